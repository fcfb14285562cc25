//! Quick manual check: `cargo run -p trace --example tr -- CMD ARGS`.
fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..]);
    let t0 = std::time::Instant::now();
    let (status, trace) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    for (p, k) in trace.iter() {
        println!("{k:<24} {}", String::from_utf8_lossy(p));
    }
    eprintln!(
        "{status} in {:?}; flags {:?} stats {:?} notes {:?}",
        t0.elapsed(),
        trace.flags,
        trace.stats,
        trace.notes
    );
}
