//! Micro-benchmark of supervisor building blocks.
use std::time::Instant;
fn main() {
    let n = 15000;
    let f = std::fs::File::open("/tmp/storm").unwrap();
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let pid = std::process::id();
    let t = Instant::now();
    for _ in 0..n {
        let _ = nix::fcntl::readlink(format!("/proc/{pid}/fd/{fd}").as_str());
    }
    println!("readlink /proc/pid/fd: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = nix::fcntl::readlink(format!("/proc/{pid}/cwd").as_str());
    }
    println!("readlink /proc/pid/cwd: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for i in 0..n {
        let _ = nix::sys::stat::lstat(format!("/tmp/storm/d1/{}", i % 500 + 1).as_str());
    }
    println!("lstat: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for i in 0..n {
        let fd = nix::fcntl::open(
            format!("/tmp/storm/d1/{}", i % 500 + 1).as_str(),
            nix::fcntl::OFlag::O_PATH,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let _ = nix::fcntl::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str());
    }
    println!("open O_PATH + readlink + close: {:?}", t.elapsed() / n);
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let src = b"/tmp/storm/d1/1\0".to_vec();
    for _ in 0..n {
        let remote = [nix::sys::uio::RemoteIoVec {
            base: src.as_ptr() as usize,
            len: 16,
        }];
        let mut local = [std::io::IoSliceMut::new(&mut buf)];
        let _ = nix::sys::uio::process_vm_readv(
            nix::unistd::Pid::from_raw(pid as i32),
            &mut local,
            &remote,
        );
    }
    println!("process_vm_readv: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = nix::unistd::getppid();
    }
    println!("getppid: {:?}", t.elapsed() / n);
}
