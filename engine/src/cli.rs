//! Command-line definitions (the "low" layer: what the user typed, no syscalls).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

/// Run a bash script speculatively, out of order and in parallel, with exactly bash's results.
///
/// `hs script.sh [ARGS...]` behaves like `bash script.sh [ARGS...]`: same stdout, stderr, exit
/// status and files. A script hs cannot parse runs unchanged under bash. To run a script whose
/// name is also a subcommand (`try`, `parse`, ...), write it with a path: `hs ./try`.
#[derive(Debug, Parser)]
#[command(
    name = "hs",
    version,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
#[command(after_help = "Exit status: the script's own, exactly as bash would return it.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Options for running a script (the default mode).
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Read commands from the first argument (as bash -c): `hs -c STRING [NAME [ARGS...]]`;
    /// NAME becomes $0, ARGS $1, $2, ...
    #[arg(short = 'c', help_heading = "Bash options")]
    pub command: bool,

    /// Read the script from standard input (runs unchanged under bash)
    #[arg(short = 's', help_heading = "Bash options")]
    pub stdin: bool,

    /// Exit on the first failing command (bash -e)
    #[arg(short = 'e', help_heading = "Bash options")]
    pub errexit: bool,

    /// Treat unset variables as an error (bash -u)
    #[arg(short = 'u', help_heading = "Bash options")]
    pub nounset: bool,

    /// Print commands as they run (bash -x; runs unchanged under bash)
    #[arg(short = 'x', help_heading = "Bash options")]
    pub xtrace: bool,

    /// Set a bash option by name (bash -o NAME), e.g. -o pipefail (xtrace and verbose run the
    /// script unchanged under bash)
    #[arg(short = 'o', value_name = "NAME", help_heading = "Bash options")]
    pub options: Vec<OsString>,

    /// The bash binary to run [default: bash from PATH]
    #[arg(long, value_name = "PATH", help_heading = "Bash options")]
    pub shell: Option<PathBuf>,

    /// Number of speculative runs at once [default: number of CPUs]; 0 is --no-speculate
    #[arg(
        short = 'j',
        long = "jobs",
        value_name = "N",
        help_heading = "Speculation options"
    )]
    pub jobs: Option<usize>,

    /// Run every command at its turn, without speculation (the overhead baseline)
    #[arg(long, help_heading = "Speculation options")]
    pub no_speculate: bool,

    /// Write a JSON report of every unit instance to FILE
    #[arg(long, value_name = "FILE", help_heading = "Report options")]
    pub report: Option<PathBuf>,

    /// Write the run's dependency DAG (instances, read-after-write, control and state edges)
    /// to FILE in Graphviz dot format
    #[arg(long, value_name = "FILE", help_heading = "Report options")]
    pub dag: Option<PathBuf>,

    /// Draw the run as a Gantt chart to FILE (SVG): one lane per speculation slot and one
    /// for the shell, a bar per execution coloured by outcome, unit text in the tooltips
    #[arg(long, value_name = "FILE", help_heading = "Report options")]
    pub timeline: Option<PathBuf>,

    /// Print one line of statistics on stderr at exit
    #[arg(long, help_heading = "Report options")]
    pub stats: bool,

    /// Print hs's own diagnostics on stderr (HS_LOG=debug for more)
    #[arg(long, help_heading = "Report options")]
    pub verbose: bool,

    /// Print input lines as they are read (bash -v; runs unchanged under bash)
    #[arg(short = 'v', help_heading = "Bash options")]
    pub verbose_input: bool,

    /// Run the script where DST shows SRC (a private bind mount; repeatable)
    #[arg(long, value_name = "SRC:DST", value_parser = view_parser(), help_heading = "View options")]
    pub bind: Vec<ViewArg>,

    /// Like --bind, read-only
    #[arg(long, value_name = "SRC:DST", value_parser = view_parser(), help_heading = "View options")]
    pub ro_bind: Vec<ViewArg>,

    /// The script and its arguments (with -c: the command string, $0 and the arguments)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SCRIPT [ARGS]"
    )]
    pub args: Vec<OsString>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the units and control-flow structure hs finds in a script, as JSON
    Parse {
        /// The script to parse
        script: PathBuf,
    },
    /// Print the instrumented script hs would hand to bash
    Instrument {
        /// The script to instrument
        script: PathBuf,
    },
    /// Run one command in a sandbox, show what it changed, and commit or discard it
    Try(TryArgs),
    /// Show the changes a kept sandbox holds
    Summary {
        /// The sandbox directory (from `hs try -D DIR`)
        dir: PathBuf,
        /// Print the change set as JSON
        #[arg(long)]
        json: bool,
    },
    /// Commit a kept sandbox into the live filesystem
    Commit {
        /// The sandbox directory (from `hs try -D DIR`)
        dir: PathBuf,
    },
    /// Start an interactive shell inside a sandbox
    Explore {
        /// The sandbox directory (a new temporary one if omitted)
        dir: Option<PathBuf>,
    },
    /// Finish or roll back commits interrupted by a crash
    Recover,
    /// Run a command and print what it read and wrote
    Trace(TraceArgs),
    /// Start $SHELL (or CMD) with private views of paths: DST shows SRC for it alone
    Shell(ShellArgs),
    /// Inside `hs shell`: make DST show SRC from now on
    Bind {
        /// Read-only
        #[arg(long)]
        ro: bool,
        /// What to show
        src: PathBuf,
        /// Where to show it
        dst: PathBuf,
    },
    /// Inside `hs shell`: remove the view on DST
    Unbind {
        /// A path given to `hs bind` or `--bind`
        dst: PathBuf,
    },
}

/// Arguments of `hs try`.
#[derive(Debug, Args)]
pub struct TryArgs {
    /// Never commit; only show the changes
    #[arg(short = 'n', conflicts_with = "yes")]
    pub no: bool,
    /// Commit without asking
    #[arg(short = 'y')]
    pub yes: bool,
    /// Keep the sandbox in DIR (reused if it exists)
    #[arg(short = 'D', value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Allow network access
    #[arg(long)]
    pub net: bool,
    /// Print the sandbox setup plan and exit
    #[arg(long)]
    pub plan: bool,
    /// Run STRING with bash -c instead of an argv
    #[arg(short = 'c', value_name = "STRING")]
    pub command_string: Option<OsString>,
    /// The command and its arguments, run exactly as given
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD [ARGS]"
    )]
    pub argv: Vec<OsString>,
}

/// Arguments of `hs trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Print every access as JSON
    #[arg(long)]
    pub json: bool,
    /// Run the command in a sandbox (its writes are discarded)
    #[arg(long)]
    pub sandbox: bool,
    /// Let dynamically linked programs record their libc lookups through a preloaded shim
    /// instead of trapping each one (same trace, much cheaper; not with --sandbox)
    #[arg(long, conflicts_with = "sandbox")]
    pub fast: bool,
    /// Write the report to FILE instead of stderr
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "CMD [ARGS]"
    )]
    pub argv: Vec<OsString>,
}

/// Arguments of `hs shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Make DST show SRC (a private bind mount; repeatable)
    #[arg(long, value_name = "SRC:DST", value_parser = view_parser())]
    pub bind: Vec<ViewArg>,
    /// Like --bind, read-only
    #[arg(long, value_name = "SRC:DST", value_parser = view_parser())]
    pub ro_bind: Vec<ViewArg>,
    /// The command to run instead of $SHELL, and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD [ARGS]"
    )]
    pub argv: Vec<OsString>,
}

/// A view `SRC:DST` (split at the first colon): DST shows SRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewArg {
    /// What to show.
    pub src: PathBuf,
    /// Where to show it.
    pub dst: PathBuf,
}

/// `-jN` as `-j N`, up to the script (clap would take `-j2` for the script's name, since the
/// script's arguments may start with a dash).
pub fn attached_jobs(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const WITH_VALUE: &[&[u8]] = &[
        b"-o",
        b"-j",
        b"--jobs",
        b"--shell",
        b"--report",
        b"--dag",
        b"--timeline",
        b"--bind",
        b"--ro-bind",
    ];
    let mut out = Vec::new();
    let mut options = true;
    let mut value_next = false;
    for (i, a) in args.into_iter().enumerate() {
        let b = a.as_bytes();
        if i > 0 && options && !std::mem::take(&mut value_next) {
            if b.len() > 2 && b.starts_with(b"-j") && b[2..].iter().all(u8::is_ascii_digit) {
                out.push(OsString::from("-j"));
                out.push(OsString::from_vec(b[2..].to_vec()));
                continue;
            }
            value_next = WITH_VALUE.contains(&b);
            if !b.starts_with(b"-") || b == b"--" {
                options = false;
            }
        }
        out.push(a);
    }
    out
}

fn view_parser() -> impl clap::builder::TypedValueParser<Value = ViewArg> {
    clap::builder::OsStringValueParser::new().try_map(|s: OsString| {
        let b = s.as_bytes();
        match b.iter().position(|&c| c == b':') {
            Some(i) if i > 0 && i + 1 < b.len() => Ok(ViewArg {
                src: PathBuf::from(OsString::from_vec(b[..i].to_vec())),
                dst: PathBuf::from(OsString::from_vec(b[i + 1..].to_vec())),
            }),
            _ => Err(format!(
                "expected SRC:DST, got {:?}",
                String::from_utf8_lossy(b)
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_jobs_are_split_before_the_script_only() {
        let v = |x: &[&str]| x.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            attached_jobs(v(&["hs", "-j0", "-e", "s.sh", "-j2"])),
            v(&["hs", "-j", "0", "-e", "s.sh", "-j2"])
        );
        assert_eq!(
            attached_jobs(v(&["hs", "-c", "x", "-j3"])),
            v(&["hs", "-c", "x", "-j3"])
        );
        assert_eq!(
            attached_jobs(v(&["hs", "-o", "pipefail", "-j2", "s"])),
            v(&["hs", "-o", "pipefail", "-j", "2", "s"])
        );
        let cli = Cli::parse_from(attached_jobs(v(&["hs", "-j4", "s.sh"])));
        assert_eq!(cli.run.jobs, Some(4));
        assert_eq!(cli.run.args, v(&["s.sh"]));
    }
}
