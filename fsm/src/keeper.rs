//! The keeper's transition table: for every (current, goal) pair the keeper
//! knows how to reach, the ordered abstract actions it carries out on its
//! Postgres (upstream's table with its 2.0 rows). The keeper
//! executes these actions; this module only describes them.
//!
//! Rows marked "ours" do not exist upstream: the monitor may retire an old
//! primary that died while converged in `single`, and send a node waiting in
//! `join_secondary` back to the election when its candidate was not promoted.
//!
//! A lease-holding keeper fences its Postgres without changing state: it
//! stops Postgres, reports `pg_is_running = false`, and starts it again only
//! once the monitor renews its lease with a writable goal (see [`Expect`]).

use crate::state::NodeState::{self, *};

/// One step of a transition, in terms of what happens to Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// initdb when PGDATA does not exist yet, configuration, start, the
    /// application database, the replication and health-check roles, HBA.
    InitPrimary,
    /// Base backup from the primary through our replication slot, then start
    /// as a standby of the primary.
    BaseBackupFromPrimary,
    /// Base backup from the most advanced standby (no slot), recovering up to
    /// the LSN it reported.
    BaseBackupFromStandby,
    /// Drop every replication slot (an old primary before it rejoins).
    DropReplicationSlots,
    /// pg_rewind against the primary, or a base backup when that fails; then
    /// start as a standby of the primary.
    RewindOrBaseBackup,
    /// Make sure Postgres runs.
    StartPostgres,
    /// Make sure Postgres is stopped (fast shutdown).
    StopPostgres,
    /// CHECKPOINT, then stop Postgres.
    CheckpointAndStop,
    /// Leave recovery (`pg_ctl promote`), wait for it, remove the standby
    /// settings; the checkpoint that follows runs in the background.
    Promote,
    /// Restart as a standby of the current primary, rewinding first when the
    /// local WAL diverged from it (a former primary that went through
    /// `report_lsn`; upstream never rewound there and such a node could never
    /// stream again).
    FollowPrimary,
    /// Restart as a standby without upstream, so its LSN stops moving.
    DisconnectFromUpstream,
    /// Stream from the most advanced standby until its reported LSN
    /// (rewinding first when that standby is on a newer timeline that forked
    /// before our last record).
    FetchMissingWal,
    /// Remove the standby settings; Postgres keeps its data paused in recovery.
    StandbyCleanup,
    /// `default_transaction_read_only = on`.
    SetReadOnly,
    /// `default_transaction_read_only = off`.
    SetReadWrite,
    /// `synchronous_standby_names = ''`, and release the commits waiting for it.
    DisableSyncRep,
    /// `synchronous_standby_names` as computed by the monitor.
    ApplySyncStandbyNames,
    /// Wait until a synchronous standby flushed the current WAL position.
    WaitForSyncStandby,
    /// Create a replication slot for each other node, drop stale ones.
    ManageSlots,
    /// On a standby: keep the other nodes' slots advancing with their LSN.
    MaintainStandbySlots,
    /// Check the standby follows the primary's timeline.
    CheckTimeline,
    /// Point the standby settings at the current primary (Postgres stopped).
    PrepareStandbySetup,
    /// Stop supervising Postgres: the operator owns it during maintenance.
    ReleasePostgres,
}

use Action::*;

/// How to go from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: NodeState,
    pub to: NodeState,
    /// What the keeper logs.
    pub comment: &'static str,
    pub actions: &'static [Action],
    /// Not an upstream row.
    pub ours: bool,
}

const fn t(
    from: NodeState,
    to: NodeState,
    comment: &'static str,
    actions: &'static [Action],
) -> Transition {
    Transition {
        from,
        to,
        comment,
        actions,
        ours: false,
    }
}

const fn ours(
    from: NodeState,
    to: NodeState,
    comment: &'static str,
    actions: &'static [Action],
) -> Transition {
    Transition {
        from,
        to,
        comment,
        actions,
        ours: true,
    }
}

const INIT_PRIMARY: &[Action] = &[InitPrimary, DisableSyncRep, ManageSlots];
const DISABLE_REPLICATION: &[Action] = &[StartPostgres, DisableSyncRep, ManageSlots];
const STOP: &[Action] = &[StopPostgres];
const PROMOTE_ALONE: &[Action] = &[
    StartPostgres,
    Promote,
    DisableSyncRep,
    SetReadWrite,
    ManageSlots,
];
const ENABLE_SYNC: &[Action] = &[ApplySyncStandbyNames, WaitForSyncStandby];
const REPORT_LSN: &[Action] = &[DisconnectFromUpstream];
const REPORT_LSN_FROM_PRIMARY: &[Action] = &[DropReplicationSlots, DisconnectFromUpstream];
const REJOIN: &[Action] = &[DropReplicationSlots, RewindOrBaseBackup];
const NOTHING: &[Action] = &[];

/// The table, in upstream order; the first matching row wins.
#[rustfmt::skip]
pub const TABLE: &[Transition] = &[
    t(Init, Single, "Start as a single node", INIT_PRIMARY),
    t(Dropped, Single, "Start as a single node", INIT_PRIMARY),
    t(Dropped, ReportLsn, "Initialise from the most advanced standby", &[BaseBackupFromStandby]),
    t(Primary, Single, "Other nodes are gone: disable synchronous replication", DISABLE_REPLICATION),
    t(WaitPrimary, Single, "Other nodes are gone: disable synchronous replication", DISABLE_REPLICATION),
    t(JoinPrimary, Single, "Other nodes are gone: disable synchronous replication", DISABLE_REPLICATION),
    t(Primary, Draining, "A failover occurred, stop writes", STOP),
    t(Draining, Demoted, "Demote after draining", STOP),
    t(Primary, Demoted, "A failover occurred, no longer primary", STOP),
    t(Primary, DemoteTimeout, "Stop Postgres: a failover is in progress", STOP),
    t(JoinPrimary, Draining, "A failover occurred, stop writes", STOP),
    t(JoinPrimary, Demoted, "A failover occurred, no longer primary", STOP),
    t(JoinPrimary, DemoteTimeout, "Stop Postgres: a failover is in progress", STOP),
    t(ApplySettings, Draining, "A failover occurred, stop writes", STOP),
    t(ApplySettings, Demoted, "A failover occurred, no longer primary", STOP),
    t(ApplySettings, DemoteTimeout, "Stop Postgres: a failover is in progress", STOP),
    t(Primary, PrepareMaintenance, "Stop the primary for maintenance", &[CheckpointAndStop]),
    t(PrepareMaintenance, Maintenance, "Keep Postgres stopped as a standby of the new primary",
      &[StopPostgres, PrepareStandbySetup, ReleasePostgres]),
    t(Draining, DemoteTimeout, "Stop Postgres: a failover is in progress", STOP),
    t(DemoteTimeout, Demoted, "Demote after the demote timeout", STOP),
    t(WaitPrimary, Demoted, "A failover occurred, no longer primary", STOP),
    t(Demoted, Single, "Other nodes are gone: start as a single node", DISABLE_REPLICATION),
    t(DemoteTimeout, Single, "Other nodes are gone: start as a single node", DISABLE_REPLICATION),
    t(Draining, Single, "Other nodes are gone: start as a single node", DISABLE_REPLICATION),
    t(Secondary, Single, "Other nodes are gone: promote this standby", PROMOTE_ALONE),
    t(CatchingUp, Single, "Other nodes are gone: promote this standby", PROMOTE_ALONE),
    t(PreparePromotion, Single, "Other nodes are gone: promote this standby", PROMOTE_ALONE),
    t(StopReplication, Single, "Other nodes are gone: promote this standby", PROMOTE_ALONE),
    t(ReportLsn, Single, "Other nodes are gone: promote this standby", PROMOTE_ALONE),
    t(Single, WaitPrimary, "A standby joined: prepare its replication slot", &[ManageSlots]),
    t(Primary, JoinPrimary, "A standby joined", NOTHING),
    t(Primary, WaitPrimary, "No healthy standby in the quorum: disable synchronous replication", &[DisableSyncRep]),
    t(JoinPrimary, WaitPrimary, "No healthy standby in the quorum: disable synchronous replication", &[DisableSyncRep]),
    t(WaitPrimary, JoinPrimary, "A standby joined", NOTHING),
    t(WaitPrimary, Primary, "A healthy standby is in the quorum: enable synchronous replication", ENABLE_SYNC),
    t(JoinPrimary, Primary, "A healthy standby is in the quorum: enable synchronous replication", ENABLE_SYNC),
    t(DemoteTimeout, Primary, "No failover happened: start Postgres again", &[StartPostgres, ApplySyncStandbyNames]),
    t(WaitStandby, CatchingUp, "The primary is ready: take a base backup", &[BaseBackupFromPrimary]),
    t(Demoted, CatchingUp, "A new primary is ready: rewind and follow it", REJOIN),
    t(Secondary, CatchingUp, "Follow the new primary", &[FollowPrimary]),
    t(CatchingUp, Secondary, "Caught up with the primary", &[CheckTimeline, MaintainStandbySlots]),
    t(Secondary, PreparePromotion, "Prepare to be promoted", NOTHING),
    t(CatchingUp, PreparePromotion, "Prepare to be promoted", NOTHING),
    t(PreparePromotion, StopReplication, "Promote, read-only until the old primary is fenced",
      &[SetReadOnly, StartPostgres, Promote, DisableSyncRep]),
    t(StopReplication, WaitPrimary, "The old primary is fenced: accept writes", &[SetReadWrite, ManageSlots]),
    t(PreparePromotion, WaitPrimary, "No old primary left: promote and accept writes",
      &[StartPostgres, Promote, DisableSyncRep, SetReadWrite, ManageSlots]),
    t(Init, WaitStandby, "Wait for the primary to accept this standby", NOTHING),
    t(Dropped, WaitStandby, "Wait for the primary to accept this standby", NOTHING),
    t(Secondary, WaitStandby, "Wait for the primary to accept this standby", NOTHING),
    t(Secondary, WaitMaintenance, "Wait for the primary before maintenance", NOTHING),
    t(CatchingUp, WaitMaintenance, "Wait for the primary before maintenance", NOTHING),
    t(WaitMaintenance, Maintenance, "Hand Postgres over for maintenance", &[ReleasePostgres]),
    t(Maintenance, CatchingUp, "Maintenance done: rewind and follow the primary", &[RewindOrBaseBackup]),
    t(Primary, ApplySettings, "Apply new replication settings", NOTHING),
    t(WaitPrimary, ApplySettings, "Apply new replication settings", NOTHING),
    t(ApplySettings, Primary, "Replication settings changed: apply synchronous_standby_names", ENABLE_SYNC),
    t(ApplySettings, Single, "Other nodes are gone: disable synchronous replication", DISABLE_REPLICATION),
    t(ApplySettings, WaitPrimary, "No healthy standby in the quorum: disable synchronous replication", &[DisableSyncRep]),
    t(ApplySettings, JoinPrimary, "A standby joined", NOTHING),
    t(Secondary, ReportLsn, "Stop replication and report the LSN", REPORT_LSN),
    t(CatchingUp, ReportLsn, "Stop replication and report the LSN", REPORT_LSN),
    t(ReportLsn, PreparePromotion, "Selected for promotion", NOTHING),
    t(ReportLsn, FastForward, "Fetch the missing WAL from the most advanced standby", &[FetchMissingWal]),
    t(FastForward, PreparePromotion, "Got the missing WAL", &[StandbyCleanup]),
    t(ReportLsn, JoinSecondary, "Another node is promoted: stop and prepare to follow it", &[CheckpointAndStop]),
    t(ReportLsn, Secondary, "Follow the new primary", &[FollowPrimary]),
    t(JoinSecondary, Secondary, "Follow the new primary", &[FollowPrimary]),
    t(Draining, ReportLsn, "Old primary joins the election", REPORT_LSN_FROM_PRIMARY),
    t(Demoted, ReportLsn, "Old primary joins the election", REPORT_LSN_FROM_PRIMARY),
    t(Init, ReportLsn, "Initialise from the most advanced standby", &[BaseBackupFromStandby]),
    // 2.0 rows.
    t(Primary, Maintenance, "Stop the primary for maintenance", &[CheckpointAndStop]),
    t(Secondary, Maintenance, "Hand Postgres over for maintenance", &[ReleasePostgres]),
    t(CatchingUp, Maintenance, "Hand Postgres over for maintenance", &[ReleasePostgres]),
    t(PrepareMaintenance, CatchingUp, "Maintenance done: rewind and follow the primary", &[RewindOrBaseBackup]),
    t(Maintenance, ReportLsn, "Maintenance done: join the election", REPORT_LSN),
    t(PrepareMaintenance, ReportLsn, "Maintenance done: join the election", REPORT_LSN),
    // Ours.
    ours(Single, Demoted, "A failover occurred, no longer primary", STOP),
    ours(JoinSecondary, ReportLsn, "The candidate was not promoted: report the LSN again", REPORT_LSN),
];

/// What the keeper enforces on Postgres while it stays in a state ("ensure
/// current state").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Postgres must run as a primary, but is only (re)started while the
    /// keeper holds a lease: a keeper that lost it must not reopen writes.
    RunningPrimary,
    /// Postgres must run as a standby of the monitor's current primary
    /// (re-pointed when the primary changed under it).
    FollowingPrimary,
    /// Postgres must run (as a standby, or promoted but read-only).
    Running,
    /// Postgres must be stopped: never restart a demoted primary.
    Stopped,
    /// Nothing is enforced (maintenance: the operator owns Postgres).
    Nothing,
}

/// The expectation for a keeper converged in `state`.
pub fn expect(state: NodeState) -> Expect {
    match state {
        Single | Primary | WaitPrimary | JoinPrimary | ApplySettings => Expect::RunningPrimary,
        Secondary | CatchingUp => Expect::FollowingPrimary,
        ReportLsn | PreparePromotion | StopReplication | FastForward => Expect::Running,
        Draining | Demoted | DemoteTimeout => Expect::Stopped,
        _ => Expect::Nothing,
    }
}

/// Whether the keeper enforces its current state before running the
/// transition to `to`: not on the way down from a primary nor back up (never
/// restart a demoting primary, never stop one coming back), and not when a
/// secondary moves on.
pub fn ensure_before_transition(from: NodeState, to: NodeState) -> bool {
    let around_demotion = |s: NodeState| matches!(s, Draining | DemoteTimeout | Demoted);
    !around_demotion(from) && !around_demotion(to) && from != Secondary
}

/// The transition from `from` to `to`, when the keeper implements it. Any
/// state may go to `dropped` (the node is being removed).
pub fn transition(from: NodeState, to: NodeState) -> Option<Transition> {
    if let Some(row) = TABLE.iter().find(|r| r.from == from && r.to == to) {
        return Some(*row);
    }
    (to == Dropped && from != Dropped).then_some(Transition {
        from,
        to,
        comment: "Node is being removed: stop Postgres",
        actions: STOP,
        ours: false,
    })
}

/// Whether a keeper can go from `from` to `to`: ours implements every row,
/// upstream's keeper only the upstream ones.
pub fn can_reach(from: NodeState, to: NodeState, our_keeper: bool) -> bool {
    from == to || transition(from, to).is_some_and(|t| our_keeper || !t.ours)
}

/// The states a keeper can be assigned from `from`.
pub fn reachable_from(from: NodeState) -> Vec<NodeState> {
    NodeState::ALL
        .into_iter()
        .filter(|&to| transition(from, to).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicate_rows() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    !(a.from == b.from && a.to == b.to),
                    "{} -> {} twice",
                    a.from,
                    a.to
                );
            }
        }
    }

    /// The edges of upstream's keeper table.
    #[test]
    fn upstream_edges_are_all_present() {
        let edges: &[(NodeState, &[NodeState])] = &[
            (
                Single,
                &[
                    Init,
                    Dropped,
                    Primary,
                    WaitPrimary,
                    JoinPrimary,
                    ApplySettings,
                    Demoted,
                    DemoteTimeout,
                    Draining,
                    Secondary,
                    CatchingUp,
                    PreparePromotion,
                    StopReplication,
                    ReportLsn,
                ],
            ),
            (
                WaitPrimary,
                &[
                    Single,
                    Primary,
                    JoinPrimary,
                    ApplySettings,
                    StopReplication,
                    PreparePromotion,
                ],
            ),
            (
                Primary,
                &[WaitPrimary, JoinPrimary, ApplySettings, DemoteTimeout],
            ),
            (JoinPrimary, &[Primary, WaitPrimary, ApplySettings]),
            (ApplySettings, &[Primary, WaitPrimary]),
            (Draining, &[Primary, JoinPrimary, ApplySettings]),
            (
                DemoteTimeout,
                &[Primary, JoinPrimary, ApplySettings, Draining],
            ),
            (
                Demoted,
                &[
                    Primary,
                    JoinPrimary,
                    ApplySettings,
                    Draining,
                    DemoteTimeout,
                    WaitPrimary,
                ],
            ),
            (PrepareMaintenance, &[Primary]),
            (
                Maintenance,
                &[
                    Primary,
                    PrepareMaintenance,
                    Secondary,
                    CatchingUp,
                    WaitMaintenance,
                ],
            ),
            (WaitMaintenance, &[Secondary, CatchingUp]),
            (WaitStandby, &[Init, Dropped, Secondary]),
            (
                CatchingUp,
                &[
                    WaitStandby,
                    Demoted,
                    Secondary,
                    Maintenance,
                    PrepareMaintenance,
                ],
            ),
            (Secondary, &[CatchingUp, ReportLsn, JoinSecondary]),
            (
                PreparePromotion,
                &[Secondary, CatchingUp, ReportLsn, FastForward],
            ),
            (StopReplication, &[PreparePromotion]),
            (
                ReportLsn,
                &[
                    Secondary,
                    CatchingUp,
                    Maintenance,
                    PrepareMaintenance,
                    Draining,
                    Demoted,
                    Init,
                    Dropped,
                ],
            ),
            (FastForward, &[ReportLsn]),
            (JoinSecondary, &[ReportLsn]),
        ];
        for (to, froms) in edges {
            for from in *froms {
                let row = transition(*from, *to);
                assert!(
                    row.is_some_and(|r| !r.ours),
                    "missing upstream edge {from} -> {to}"
                );
            }
        }
        for from in NodeState::ALL {
            if from != Dropped {
                assert!(transition(from, Dropped).is_some());
            }
        }
    }

    #[test]
    fn our_rows_are_marked() {
        assert!(transition(Single, Demoted).is_some_and(|t| t.ours));
        assert!(transition(JoinSecondary, ReportLsn).is_some_and(|t| t.ours));
        assert!(can_reach(JoinSecondary, ReportLsn, true));
        assert!(!can_reach(JoinSecondary, ReportLsn, false));
    }
}
