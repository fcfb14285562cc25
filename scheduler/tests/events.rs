//! Hand-driven event sequences for what the simulated shell does not model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::{
    Access, AccessKind, Action, Config, Event, Flags, Instance, Node, Outcome, Program, RunId,
    Scheduler, State, Trace, UnitId, UnitSpec, Why,
};

fn unit(id: u32) -> Node {
    Node::Unit(UnitSpec {
        id: UnitId(id),
        vars: vec![],
        paths: vec![],
    })
}

fn state() -> State {
    State {
        vars: Default::default(),
        context: Arc::from(&b"ctx"[..]),
    }
}

struct Driver {
    s: Scheduler,
    t0: Instant,
    ms: u64,
}

impl Driver {
    fn new(window: usize, root: Node) -> Driver {
        let config = Config {
            window,
            ..Config::default()
        };
        Driver {
            s: Scheduler::new(config, Program::new(root)),
            t0: Instant::now(),
            ms: 0,
        }
    }

    fn send(&mut self, e: Event) -> Vec<Action> {
        self.ms += 1;
        self.s.handle(self.t0 + Duration::from_millis(self.ms), e);
        let a: Vec<Action> = std::iter::from_fn(|| self.s.poll_action()).collect();
        a
    }

    fn gate(&mut self, unit: u32) -> Vec<Action> {
        self.send(Event::GateReached {
            instance: Instance::new(unit, &[]),
            state: state(),
        })
    }

    fn direct_done(&mut self, unit: u32, trace: Trace) -> Vec<Action> {
        self.send(Event::DirectRunFinished {
            instance: Instance::new(unit, &[]),
            trace,
            exit: 0,
        })
    }
}

fn started(actions: &[Action]) -> Vec<(RunId, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { run, instance, .. } => Some((*run, instance.unit.0)),
            _ => None,
        })
        .collect()
}

fn writes(path: &str) -> Trace {
    Trace {
        reads: vec![],
        writes: vec![Access::new(path, AccessKind::Write)],
        flags: Flags::NONE,
    }
}

#[test]
fn background_jobs_are_not_speculated_and_block_commits_while_running() {
    // slow & ; b ; c
    let mut d = Driver::new(
        4,
        Node::Seq(vec![Node::Background(Box::new(unit(0))), unit(1), unit(2)]),
    );
    let a = d.send(Event::Started { state: state() });
    assert!(started(&a).is_empty(), "prediction stops at `&`: {a:?}");
    // The background job's gate: run it yourself; the foreground goes on.
    let a = d.gate(0);
    assert_eq!(
        a,
        vec![Action::AnswerGate {
            instance: Instance::new(0, &[])
        }]
    );
    // The shell reaches u1 while the job still runs.
    let a = d.gate(1);
    assert!(a.contains(&Action::AnswerGate {
        instance: Instance::new(1, &[])
    }));
    let runs = started(&a);
    assert_eq!(runs.iter().map(|r| r.1).collect::<Vec<_>>(), vec![2]);
    let a = d.send(Event::RunFinished {
        run: runs[0].0,
        trace: Trace::default(),
        exit: 0,
    });
    assert!(a.is_empty());
    d.direct_done(1, Trace::default());
    // u2's run finished, but the job may still write what it read: run it for real.
    let a = d.gate(2);
    assert!(a.contains(&Action::Discard { run: runs[0].0 }), "{a:?}");
    assert!(a.contains(&Action::AnswerGate {
        instance: Instance::new(2, &[])
    }));
    let r = d.s.dag().record(&Instance::new(2, &[])).unwrap();
    assert_eq!(r.runs[0].discarded, Some(Why::Background));
}

#[test]
fn gates_inside_functions_predict_the_rest_of_the_body() {
    // f() { a; b; }; f; c
    let mut d = Driver::new(
        4,
        Node::Seq(vec![
            Node::Function {
                name: b"f".to_vec(),
                body: Box::new(Node::Seq(vec![unit(0), unit(1)])),
            },
            Node::Unknown,
            unit(2),
        ]),
    );
    let a = d.send(Event::Started { state: state() });
    assert!(started(&a).is_empty(), "stops at the call: {a:?}");
    let a = d.gate(0);
    assert_eq!(started(&a).iter().map(|r| r.1).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn untraced_direct_runs_invalidate_overlapping_speculation() {
    let mut d = Driver::new(4, Node::Seq(vec![unit(0), unit(1)]));
    let a = d.send(Event::Started { state: state() });
    let runs = started(&a);
    assert_eq!(runs.len(), 2);
    d.send(Event::RunFinished {
        run: runs[1].0,
        trace: Trace::default(),
        exit: 0,
    });
    // The shell reaches u0 before its run finished: wait for it; it turns out unsafe.
    let a = d.gate(0);
    assert!(a.is_empty(), "{a:?}");
    let a = d.send(Event::RunFinished {
        run: runs[0].0,
        trace: Trace {
            flags: Flags::TTY,
            ..Trace::default()
        },
        exit: 0,
    });
    assert!(a.contains(&Action::AnswerGate {
        instance: Instance::new(0, &[])
    }));
    // Run directly, its trace incomplete: u1 could have seen anything.
    let a = d.direct_done(
        0,
        Trace {
            flags: Flags::UNTRACED,
            ..Trace::default()
        },
    );
    assert!(a.contains(&Action::Discard { run: runs[1].0 }), "{a:?}");
    let r = d.s.dag().record(&Instance::new(1, &[])).unwrap();
    assert_eq!(r.runs[0].discarded, Some(Why::Untraced));
}

#[test]
fn report_and_dot_describe_the_run() {
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1)]));
    let runs = started(&d.send(Event::Started { state: state() }));
    d.send(Event::RunFinished {
        run: runs[0].0,
        trace: writes("/x"),
        exit: 0,
    });
    d.send(Event::RunFinished {
        run: runs[1].0,
        trace: Trace {
            reads: vec![Access::new("/x", AccessKind::Read)],
            ..Trace::default()
        },
        exit: 0,
    });
    let a = d.gate(0);
    assert_eq!(a, vec![Action::Commit { run: runs[0].0 }]);
    let a = d.send(Event::CommitDone { run: runs[0].0 });
    // u1 read /x before u0's commit: dropped at once and restarted.
    assert!(a.contains(&Action::Discard { run: runs[1].0 }));
    let again = started(&a);
    assert_eq!(again.len(), 1);
    d.send(Event::RunFinished {
        run: again[0].0,
        trace: Trace {
            reads: vec![Access::new("/x", AccessKind::Read)],
            ..Trace::default()
        },
        exit: 0,
    });
    let a = d.gate(1);
    assert_eq!(a, vec![Action::Commit { run: again[0].0 }]);
    d.send(Event::CommitDone { run: again[0].0 });
    d.send(Event::ShellExited);
    let report = d.s.report();
    assert_eq!(report.instances.len(), 2);
    assert!(matches!(report.instances[1].outcome, Outcome::Committed(_)));
    assert_eq!(report.stats.committed, 2);
    let dot = d.s.dag().to_dot();
    assert!(dot.contains("raw /x"), "{dot}");
    assert!(d.s.is_idle());
}

fn reads(path: &str) -> Trace {
    Trace {
        reads: vec![Access::new(path, AccessKind::Read)],
        writes: vec![],
        flags: Flags::NONE,
    }
}

#[test]
fn a_run_doomed_by_its_history_is_restarted_at_once() {
    // for i in 0 1; do produce > /f; consume < /f; done
    let mut d = Driver::new(
        4,
        Node::For {
            id: scheduler::LoopId(0),
            var: b"i".to_vec(),
            words: Some(vec![b"0".to_vec(), b"1".to_vec()]),
            body: Box::new(Node::Seq(vec![unit(0), unit(1)])),
        },
    );
    let runs = started(&d.send(Event::Started { state: state() }));
    let run_of = |runs: &[(RunId, u32)], k: usize| runs[k].0;
    assert_eq!(
        runs.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![0, 1, 0, 1]
    );
    let x = |u, i| Instance::new(u, &[i]);
    let gate = |d: &mut Driver, u, i| {
        d.send(Event::GateReached {
            instance: x(u, i),
            state: state(),
        })
    };
    // consume[0] finishes first: its trace becomes history.
    d.send(Event::RunFinished {
        run: run_of(&runs, 1),
        trace: reads("/f"),
        exit: 0,
    });
    assert!(gate(&mut d, 0, 0).is_empty());
    let a = d.send(Event::RunFinished {
        run: run_of(&runs, 0),
        trace: writes("/f"),
        exit: 0,
    });
    assert_eq!(
        a,
        vec![Action::Commit {
            run: run_of(&runs, 0)
        }]
    );
    let a = d.send(Event::CommitDone {
        run: run_of(&runs, 0),
    });
    assert!(a.contains(&Action::Discard {
        run: run_of(&runs, 1)
    }));
    let again = started(&a)[0].0;
    assert!(gate(&mut d, 1, 0).is_empty());
    let a = d.send(Event::RunFinished {
        run: again,
        trace: reads("/f"),
        exit: 0,
    });
    assert_eq!(a, vec![Action::Commit { run: again }]);
    d.send(Event::CommitDone { run: again });
    // Iteration 1: the producer commits; the consumer, started before, still runs.
    d.send(Event::RunFinished {
        run: run_of(&runs, 2),
        trace: writes("/f"),
        exit: 0,
    });
    assert_eq!(
        gate(&mut d, 0, 1),
        vec![Action::Commit {
            run: run_of(&runs, 2)
        }]
    );
    // The consumer of iteration 1 was killed when /f was first committed, then held back
    // (the producer of iteration 1 is expected to write /f) until that producer commits.
    let a = d.send(Event::CommitDone {
        run: run_of(&runs, 2),
    });
    let restarted = started(&a);
    assert_eq!(restarted.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1]);
    let r = d.s.dag().record(&x(1, 1)).unwrap();
    assert_eq!(r.runs.len(), 2);
    assert_eq!(
        r.runs[0].discarded,
        Some(Why::Doomed {
            path: b"/f".to_vec()
        })
    );
    assert!(d.s.stats().held > 0);
    assert!(gate(&mut d, 1, 1).is_empty(), "waits for the restarted run");
}

#[test]
fn set_window_pauses_and_resumes_speculation() {
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1), unit(2)]));
    d.s.set_window(0);
    let a = d.send(Event::Started { state: state() });
    assert!(started(&a).is_empty());
    d.s.set_window(2);
    let a: Vec<Action> = std::iter::from_fn(|| d.s.poll_action()).collect();
    assert_eq!(started(&a).len(), 2);
    assert_eq!(d.s.config().window, 2);
}

#[test]
fn shell_activity_between_gates_invalidates_what_read_it() {
    // u0 ; echo x > /f (a builtin) ; u1 (reads /f)
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), Node::Builtin, unit(1)]));
    let runs = started(&d.send(Event::Started { state: state() }));
    assert_eq!(runs.len(), 2);
    d.send(Event::RunFinished {
        run: runs[0].0,
        trace: Trace::default(),
        exit: 0,
    });
    d.send(Event::RunFinished {
        run: runs[1].0,
        trace: Trace {
            reads: vec![Access::new("/f", AccessKind::Read)],
            ..Trace::default()
        },
        exit: 0,
    });
    assert_eq!(d.gate(0), vec![Action::Commit { run: runs[0].0 }]);
    d.send(Event::CommitDone { run: runs[0].0 });
    // Nothing the shell did touched /f: no change.
    assert!(
        d.send(Event::ShellActivity { trace: reads("/f") })
            .is_empty()
    );
    // The builtin's redirection rewrote /f: u1's run saw the old content.
    let a = d.send(Event::ShellActivity {
        trace: writes("/f"),
    });
    assert!(a.contains(&Action::Discard { run: runs[1].0 }), "{a:?}");
    let r = d.s.dag().record(&Instance::new(1, &[])).unwrap();
    assert!(
        matches!(r.runs[0].discarded, Some(Why::Conflict { .. })),
        "{r:?}"
    );
}

#[test]
fn an_abandoned_run_leaves_the_unit_to_the_shell() {
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1)]));
    let runs = started(&d.send(Event::Started { state: state() }));
    assert_eq!(runs.len(), 2);
    // The shell is at u0 while its run has not even started: the engine gives it up.
    assert!(d.gate(0).is_empty());
    let a = d.send(Event::Abandon { run: runs[0].0 });
    assert!(a.contains(&Action::Kill { run: runs[0].0 }), "{a:?}");
    assert!(a.contains(&Action::AnswerGate {
        instance: Instance::new(0, &[])
    }));
    let r = d.s.dag().record(&Instance::new(0, &[])).unwrap();
    assert_eq!(r.runs[0].discarded, Some(Why::Abandoned));
    // Giving up a run nobody waits for kills it (and it may be tried again later).
    let a = d.send(Event::Abandon { run: runs[1].0 });
    assert_eq!(a[0], Action::Kill { run: runs[1].0 });
    assert!(
        !a.iter().any(|x| matches!(x, Action::AnswerGate { .. })),
        "{a:?}"
    );
}

#[test]
fn a_lookup_of_a_directory_ignores_changes_below_it() {
    // u0 creates /d/new; u1 only looked /d up (bash checking its working directory).
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1)]));
    let runs = started(&d.send(Event::Started { state: state() }));
    let exists = |p: &str| Trace {
        reads: vec![Access::new(p, AccessKind::Exists)],
        ..Trace::default()
    };
    d.send(Event::RunFinished {
        run: runs[0].0,
        trace: Trace {
            writes: vec![Access::new("/d/new", AccessKind::Create)],
            ..Trace::default()
        },
        exit: 0,
    });
    d.send(Event::RunFinished {
        run: runs[1].0,
        trace: exists("/d"),
        exit: 0,
    });
    assert_eq!(d.gate(0), vec![Action::Commit { run: runs[0].0 }]);
    let a = d.send(Event::CommitDone { run: runs[0].0 });
    assert!(
        !a.iter().any(|x| matches!(x, Action::Discard { .. })),
        "{a:?}"
    );
    assert_eq!(d.gate(1), vec![Action::Commit { run: runs[1].0 }]);
    d.send(Event::CommitDone { run: runs[1].0 });
    // Replacing the directory itself does count.
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1)]));
    let runs = started(&d.send(Event::Started { state: state() }));
    d.send(Event::RunFinished {
        run: runs[0].0,
        trace: Trace {
            writes: vec![Access::new("/d", AccessKind::Delete)],
            ..Trace::default()
        },
        exit: 0,
    });
    d.send(Event::RunFinished {
        run: runs[1].0,
        trace: exists("/d"),
        exit: 0,
    });
    d.gate(0);
    let a = d.send(Event::CommitDone { run: runs[0].0 });
    assert!(a.contains(&Action::Discard { run: runs[1].0 }), "{a:?}");
}

#[test]
fn a_unit_left_to_the_shell_for_being_short_is_speculated_again_once_it_is_not() {
    let mut d = Driver::new(2, Node::Seq(vec![unit(0), unit(1), unit(2)]));
    d.s.set_too_short(UnitId(1), true);
    d.s.set_too_short(UnitId(2), true);
    let a = d.send(Event::Started { state: state() });
    // Only unit 0 starts; the short ones wait (they are not flagged unsafe).
    assert_eq!(started(&a).iter().map(|s| s.1).collect::<Vec<_>>(), vec![0]);
    d.s.set_too_short(UnitId(2), false);
    let a: Vec<Action> = std::iter::from_fn(|| d.s.poll_action()).collect();
    assert_eq!(started(&a).iter().map(|s| s.1).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn a_passed_gate_moves_prediction_on_without_an_answer() {
    let mut d = Driver::new(1, Node::Seq(vec![unit(0), unit(1), unit(2)]));
    let a = d.send(Event::Started { state: state() });
    assert_eq!(started(&a).iter().map(|s| s.1).collect::<Vec<_>>(), vec![0]);
    // The shell runs unit 0 itself without asking: its run is dropped, no answer is given,
    // and the window goes to what follows.
    let a = d.send(Event::GatePassed {
        instance: Instance::new(0, &[]),
        state: None,
    });
    assert!(
        !a.iter().any(|x| matches!(x, Action::AnswerGate { .. })),
        "{a:?}"
    );
    assert!(a.iter().any(|x| matches!(x, Action::Kill { .. })), "{a:?}");
    assert_eq!(started(&a).iter().map(|s| s.1).collect::<Vec<_>>(), vec![1]);
    let a = d.direct_done(0, Trace::default());
    assert!(started(&a).is_empty(), "{a:?}");
}
