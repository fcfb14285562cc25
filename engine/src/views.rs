//! `hs shell`, `hs bind`, `hs unbind` and `hs --bind`: private views of paths.
//!
//! `hs shell` moves itself into a private mount namespace (a new user namespace too unless
//! root, see [`sandbox::views`]), makes the requested views, and runs `$SHELL` or CMD with
//! `HS_VIEW_SOCKET` naming a unix socket in a fresh 0700 directory. It stays behind as the
//! shell's parent, holding the capability to mount in that namespace, and serves `hs bind`
//! and `hs unbind` from the shell's user; it exits with the shell's status, removing the
//! socket.
//!
//! Protocol, one request per connection: the client opens SRC and DST itself (so relative
//! paths and symlinks resolve where it stands) and sends, with those descriptors attached
//! (`SCM_RIGHTS`), `u32 length` + op byte (`b` bind, `r` read-only bind, `u` unbind) + for
//! each path `u32 length` + bytes (the names, for messages). The reply is `0`, or `1` and an
//! error message; then the helper closes the connection.
//!
//! `hs --bind SRC:DST script.sh` makes the views, then re-executes hs without them in the
//! same process, so the script and everything hs starts for it see the views.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sandbox::views::{PathFd, Views, recv_with_fds, send_with_fds};

use crate::cli::{RunArgs, ShellArgs, ViewArg};

/// The variable naming the socket of the innermost `hs shell`.
const SOCKET_VAR: &str = "HS_VIEW_SOCKET";

/// Largest request accepted (two paths and headers).
const MAX_REQUEST: usize = 3 * 4096 + 64;

/// `hs shell`.
pub fn shell_main(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let mut views = enter()?;
    make_views(&mut views, &args.bind, &args.ro_bind)?;
    let (dir, listener) = listen()?;
    let socket = dir.join("s");
    let argv = if args.argv.is_empty() {
        vec![std::env::var_os("SHELL").unwrap_or_else(|| "bash".into())]
    } else {
        args.argv
    };
    // ^C and ^\ are for the shell: the helper ignores them (children start with an empty mask).
    let mut ignored = nix::sys::signal::SigSet::empty();
    ignored.add(nix::sys::signal::Signal::SIGINT);
    ignored.add(nix::sys::signal::Signal::SIGQUIT);
    let _ = ignored.thread_block();
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env(SOCKET_VAR, &socket)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e).with_context(|| format!("cannot run {}", argv[0].to_string_lossy()));
        }
    };
    std::thread::Builder::new()
        .name("hs-views".into())
        .spawn(move || serve(listener, views))
        .context("cannot start the view server")?;
    let status = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.context("cannot wait for the shell")?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `hs bind [--ro] SRC DST`.
pub fn bind_main(src: &Path, dst: &Path, read_only: bool) -> anyhow::Result<ExitCode> {
    let socket = socket("bind")?;
    let s = open(src, "view source")?;
    let d = open(dst, "view destination")?;
    request(&socket, if read_only { b'r' } else { b'b' }, &[&s, &d])
        .with_context(|| format!("cannot bind {} on {}", src.display(), dst.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `hs unbind DST`.
pub fn unbind_main(dst: &Path) -> anyhow::Result<ExitCode> {
    let socket = socket("unbind")?;
    let d = open(dst, "view")?;
    request(&socket, b'u', &[&d]).with_context(|| format!("cannot unbind {}", dst.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `hs --bind SRC:DST [OPTIONS] script.sh`: make the views, then become hs without them.
pub fn run_main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut views = enter()?;
    make_views(&mut views, &args.bind, &args.ro_bind)?;
    let arg0 = std::env::args_os().next().unwrap_or_else(|| "hs".into());
    // The script is not in the shell's namespace any more: `hs bind` there would change the
    // wrong one.
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(run_argv(&args))
        .env_remove(SOCKET_VAR)
        .exec();
    Err(err).context("cannot re-execute hs in the view namespace")
}

fn enter() -> anyhow::Result<Views> {
    Views::enter().context("cannot make a private mount namespace for the views")
}

fn open(path: &Path, what: &str) -> anyhow::Result<PathFd> {
    PathFd::open(path)
        .map_err(|e| match e {
            // The path is in the context already.
            sandbox::Error::Io { source, .. } => anyhow::Error::from(source),
            e => e.into(),
        })
        .with_context(|| format!("cannot open the {what} {}", path.display()))
}

/// Make the views of `--bind` and `--ro-bind`, parents first.
fn make_views(views: &mut Views, bind: &[ViewArg], ro_bind: &[ViewArg]) -> anyhow::Result<()> {
    let mut all: Vec<(&ViewArg, bool, PathBuf)> = bind
        .iter()
        .map(|v| (v, false))
        .chain(ro_bind.iter().map(|v| (v, true)))
        .map(|(v, ro)| (v, ro, std::path::absolute(&v.dst).unwrap_or(v.dst.clone())))
        .collect();
    all.sort_by_key(|(_, _, dst)| dst.components().count());
    for (v, ro, _) in all {
        let src = open(&v.src, "view source")?;
        let dst = open(&v.dst, "view destination")?;
        views
            .bind(&src, dst, ro)
            .with_context(|| format!("cannot bind {} on {}", v.src.display(), v.dst.display()))?;
    }
    Ok(())
}

/// The arguments that run `args` again, without the views.
fn run_argv(args: &RunArgs) -> Vec<OsString> {
    // No `..`: a new option must be passed on here too.
    let RunArgs {
        command,
        stdin,
        errexit,
        nounset,
        xtrace,
        options,
        shell,
        jobs,
        no_speculate,
        report,
        dag,
        timeline,
        stats,
        verbose,
        verbose_input,
        bind: _,
        ro_bind: _,
        args,
    } = args;
    let mut v: Vec<OsString> = Vec::new();
    for (on, flag) in [
        (command, "-c"),
        (stdin, "-s"),
        (errexit, "-e"),
        (nounset, "-u"),
        (xtrace, "-x"),
        (verbose_input, "-v"),
        (no_speculate, "--no-speculate"),
        (stats, "--stats"),
        (verbose, "--verbose"),
    ] {
        if *on {
            v.push(flag.into());
        }
    }
    for o in options {
        v.extend(["-o".into(), o.clone()]);
    }
    if let Some(s) = shell {
        v.extend(["--shell".into(), s.clone().into_os_string()]);
    }
    if let Some(j) = jobs {
        v.extend(["-j".into(), j.to_string().into()]);
    }
    if let Some(r) = report {
        v.extend(["--report".into(), r.clone().into_os_string()]);
    }
    if let Some(d) = dag {
        v.extend(["--dag".into(), d.clone().into_os_string()]);
    }
    if let Some(t) = timeline {
        v.extend(["--timeline".into(), t.clone().into_os_string()]);
    }
    v.push("--".into());
    v.extend(args.iter().cloned());
    v
}

/// A fresh 0700 directory for the socket (in `$XDG_RUNTIME_DIR`, else the temporary
/// directory) and the socket listening in it.
fn listen() -> anyhow::Result<(PathBuf, UnixListener)> {
    let bases = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([std::env::temp_dir()]);
    let mut last = None;
    for base in bases {
        for n in 0..100 {
            let dir = base.join(format!("hs-view-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let sock = dir.join("s");
                    return match UnixListener::bind(&sock) {
                        Ok(l) => Ok((dir, l)),
                        Err(e) => {
                            let _ = std::fs::remove_dir(&dir);
                            Err(e).with_context(|| format!("cannot listen on {}", sock.display()))
                        }
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    last = Some((dir, e));
                    break;
                }
            }
        }
    }
    match last {
        Some((dir, e)) => Err(e).with_context(|| format!("cannot create {}", dir.display())),
        None => bail!("cannot find a free directory name for the view socket"),
    }
}

/// Serve `hs bind` / `hs unbind` requests until the process exits.
fn serve(listener: UnixListener, mut views: Views) {
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else { continue };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let reply = match handle(&mut stream, &mut views) {
            Ok(()) => b"0".to_vec(),
            Err(e) => {
                tracing::debug!("view request failed: {e:#}");
                let mut r = b"1".to_vec();
                r.extend(format!("{e:#}").as_bytes());
                r
            }
        };
        let _ = stream.write_all(&reply);
    }
}

/// One request: read it, check the peer, act.
fn handle(stream: &mut UnixStream, views: &mut Views) -> anyhow::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let (mut got, fds) =
        recv_with_fds(stream.as_fd(), &mut buf).context("cannot read the request")?;
    if got < 4 {
        bail!("short request");
    }
    let len = u32::from_le_bytes(buf[..4].try_into()?) as usize;
    if len + 4 > buf.len() {
        bail!("request too long");
    }
    while got < len + 4 {
        let n = stream.read(&mut buf[got..len + 4])?;
        if n == 0 {
            bail!("truncated request");
        }
        got += n;
    }
    // Checked once the request is read: closing a socket with unread data would reset it,
    // and the client would miss the reply.
    let peer = nix::sys::socket::getsockopt(&*stream, nix::sys::socket::sockopt::PeerCredentials)
        .context("cannot identify the client")?;
    let me = nix::unistd::getuid().as_raw();
    if peer.uid() != me {
        bail!(
            "permission denied: only uid {me} may change this shell's views (client uid {})",
            peer.uid()
        );
    }
    let body = &buf[4..len + 4];
    let (&op, mut rest) = body.split_first().context("empty request")?;
    let mut names = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_le_bytes(rest[..4].try_into()?) as usize;
        let name = rest.get(4..4 + n).context("malformed request")?;
        names.push(PathBuf::from(OsString::from_vec(name.to_vec())));
        rest = &rest[4 + n..];
    }
    if names.len() != fds.len() {
        bail!(
            "malformed request: {} names, {} descriptors",
            names.len(),
            fds.len()
        );
    }
    let mut paths = fds
        .into_iter()
        .zip(names)
        .map(|(fd, name)| PathFd::from_fd(fd, name));
    match (op, paths.next(), paths.next(), paths.next()) {
        (b'b' | b'r', Some(src), Some(dst), None) => Ok(views.bind(&src, dst, op == b'r')?),
        (b'u', Some(dst), None, None) => Ok(views.unbind(&dst)?),
        _ => bail!("malformed request"),
    }
}

/// The socket of the enclosing `hs shell`.
fn socket(cmd: &str) -> anyhow::Result<PathBuf> {
    match std::env::var_os(SOCKET_VAR) {
        Some(s) if !s.is_empty() => Ok(PathBuf::from(s)),
        _ => bail!(
            "hs {cmd} works only inside `hs shell` ({SOCKET_VAR} is not set; start one with \
             `hs shell --bind SRC:DST`)"
        ),
    }
}

/// Send one request and wait for the reply.
fn request(socket: &Path, op: u8, paths: &[&PathFd]) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the hs shell at {} (has it exited?)",
            socket.display()
        )
    })?;
    let mut body = vec![op];
    for p in paths {
        let name = std::path::absolute(p.path()).unwrap_or_else(|_| p.path().to_path_buf());
        let name = name.as_os_str().as_bytes();
        body.extend((name.len() as u32).to_le_bytes());
        body.extend(name);
    }
    let mut msg = (body.len() as u32).to_le_bytes().to_vec();
    msg.extend(body);
    if msg.len() > MAX_REQUEST {
        bail!("paths too long");
    }
    let fds: Vec<_> = paths.iter().map(|p| p.as_fd()).collect();
    let sent = send_with_fds(stream.as_fd(), &msg, &fds).context("cannot send the request")?;
    stream.write_all(&msg[sent..])?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .context("cannot read the reply")?;
    match reply.split_first() {
        Some((b'0', _)) => Ok(()),
        Some((b'1', msg)) => bail!("{}", String::from_utf8_lossy(msg)),
        _ => bail!("the hs shell closed the connection without a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Parsing `run_argv`'s output gives back the same options and arguments.
    #[test]
    fn run_argv_round_trips() {
        for line in [
            &[
                "hs", "--bind", "a:b", "-e", "-o", "pipefail", "-j", "3", "s.sh", "-x", "--", "y",
            ][..],
            &["hs", "--ro-bind=a:b:c", "-c", "--", "echo $0", "-n"],
            &[
                "hs", "--bind", "a:b", "--stats", "--report", "r.json", "./try",
            ],
            &["hs", "--bind", "a:b"],
        ] {
            let cli = crate::cli::Cli::parse_from(line);
            assert!(!cli.run.bind.is_empty() || !cli.run.ro_bind.is_empty());
            let again = crate::cli::Cli::parse_from(
                std::iter::once(OsString::from("hs")).chain(run_argv(&cli.run)),
            );
            assert!(again.command.is_none(), "{line:?}");
            let r = &again.run;
            assert!(r.bind.is_empty() && r.ro_bind.is_empty());
            assert_eq!(format!("{:?}", r.args), format!("{:?}", cli.run.args));
            assert_eq!(
                (r.command, r.errexit, r.stats, r.jobs, &r.options, &r.report),
                (
                    cli.run.command,
                    cli.run.errexit,
                    cli.run.stats,
                    cli.run.jobs,
                    &cli.run.options,
                    &cli.run.report
                )
            );
        }
        let cli = crate::cli::Cli::parse_from(["hs", "--ro-bind=a:b:c", "x"]);
        assert_eq!(
            cli.run.ro_bind,
            [ViewArg {
                src: "a".into(),
                dst: "b:c".into()
            }]
        );
    }
}
