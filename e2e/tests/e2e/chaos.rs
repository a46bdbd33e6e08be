//! The smoke version of `make chaos`: one SIGKILL of each process under load, then the checker.

use std::time::Duration;

use ackbox_e2e::chaos::{self, Plan, Scenario};

#[test]
fn one_kill_of_each_process_under_load_loses_nothing_duplicates_nothing_and_invents_nothing() {
    let plan = Plan {
        scenario: Scenario::Smoke,
        seed: 7,
        rate: 20,
        load: Duration::from_secs(8),
        drain_deadline: Duration::from_secs(120),
    };
    let report = chaos::run(&plan);
    println!("{}", chaos::summary(std::slice::from_ref(&report)));
    assert!(report.accepted > 0, "some submits were accepted: {report:?}");
    assert_eq!(report.faults.iter().filter(|f| f.contains("SIGKILL")).count(), 3, "{:?}", report.faults);
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.unexpected, 0, "{report:?}");
    assert_eq!(report.duplicate_effects, 0, "{report:?}");
    assert_eq!(report.stuck, 0, "{report:?}");
    assert_eq!(report.unpublished, 0, "{report:?}");
    assert_eq!(report.server_errors, 0, "{report:?}");
    assert!(report.passed());
}
