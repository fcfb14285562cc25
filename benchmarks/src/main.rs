//! hs benchmarks: each subcommand measures one thing and reports it as ratios against bash,
//! measured in the same run (DESIGN §5).
//!
//! ```text
//! cargo run -p benchmarks --release -- overhead [--runs N] [--json FILE] ...
//! cargo run -p benchmarks --release -- corpus [--scale N] [-j N] [--runs K] [--only NAME...]
//! cargo run -p benchmarks --release -- tables     # the README's two speculation tables
//! ```
//!
//! `common` holds what the bash-vs-hs subcommands share (timing, workloads, comparison).
//!
//! Every subcommand lives in its own module with a `main(args) -> anyhow::Result<()>`; adding one
//! is a `mod` line and a match arm below.

use std::ffi::OsString;
use std::process::ExitCode;

mod common;
mod corpus;
mod overhead;
mod sandbox;
mod trace;

const USAGE: &str = "\
usage: benchmarks SUBCOMMAND [OPTIONS]

subcommands:
  sandbox     sandbox setup+teardown of `true`, commit of 10k files and of 1 GiB (issue 3)
  overhead    cost of hs's gates with speculation off: 2,000 /bin/true calls and the corpus,
              hs --no-speculate vs bash (see `benchmarks overhead --help`)
  trace       tracer cost: stat storm, C build, fork/exec loop; untraced vs traced vs strace
  corpus      speedup of hs (speculating) over bash per corpus/built-in script, against the
              ideal its DAG allows: corpus [--scale N] [-j N] [--runs K] [--only NAME...]
              [--csv FILE] [--json FILE] (see `benchmarks corpus --help`)
  tables      the README's speculation tables in one go: `corpus --scale 1 --runs 2` (every
              workload), then `corpus --scale 4 --runs 1` on issue 5's list and fully_seq;
              options after `tables` are passed to both (e.g. --hs PATH, -j N)
";

/// Issue 5's SCALE=4 list, and `fully_seq`.
const SCALE4_LIST: &[&str] = &[
    "unix50_full",
    "bus_analytics_full",
    "temp-analytics",
    "tr-test",
    "dgsh8_text_properties",
    "nginx",
    "compress_files",
    "bigrams",
    "fully_seq",
];

/// `tables`: both README tables, each headed by how it was made and the CPU count.
fn tables(rest: Vec<OsString>) -> anyhow::Result<()> {
    let cpus = common::cpu_count();
    println!("## corpus --scale 1 --runs 2 ({cpus} CPUs)\n");
    let mut one: Vec<OsString> = ["--scale", "1", "--runs", "2"].map(OsString::from).into();
    one.extend(rest.iter().cloned());
    corpus::main(one)?;
    println!("\n## corpus --scale 4 --runs 1, issue 5's list ({cpus} CPUs)\n");
    let mut four: Vec<OsString> = ["--scale", "4", "--runs", "1"].map(OsString::from).into();
    for name in SCALE4_LIST {
        four.extend(["--only".into(), OsString::from(name)]);
    }
    four.extend(rest);
    corpus::main(four)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let sub = args.next().unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    let result = match sub.to_str().unwrap_or("") {
        "corpus" => corpus::main(rest),
        "tables" => tables(rest),
        "overhead" => overhead::main(rest),
        "sandbox" => sandbox::main(rest),
        "trace" => trace::main(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprint!("benchmarks: unknown subcommand {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benchmarks: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
