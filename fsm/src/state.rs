//! The 22 node states of pg_auto_failover (`pgautofailover.replication_state`),
//! spelled exactly as upstream, and the classification helpers every component
//! uses to reason about them.

use std::fmt;
use std::str::FromStr;

/// A node state, as reported by a keeper or assigned by the monitor.
///
/// The declaration order is the SQL enum order (which is also the sort order
/// clients observe with `ORDER BY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    Unknown,
    Init,
    Single,
    WaitPrimary,
    Primary,
    Draining,
    DemoteTimeout,
    Demoted,
    CatchingUp,
    Secondary,
    PreparePromotion,
    StopReplication,
    WaitStandby,
    Maintenance,
    JoinPrimary,
    ApplySettings,
    PrepareMaintenance,
    WaitMaintenance,
    ReportLsn,
    FastForward,
    JoinSecondary,
    Dropped,
}

use NodeState::*;

impl NodeState {
    /// Every state, in SQL enum declaration order.
    pub const ALL: [NodeState; 22] = [
        Unknown,
        Init,
        Single,
        WaitPrimary,
        Primary,
        Draining,
        DemoteTimeout,
        Demoted,
        CatchingUp,
        Secondary,
        PreparePromotion,
        StopReplication,
        WaitStandby,
        Maintenance,
        JoinPrimary,
        ApplySettings,
        PrepareMaintenance,
        WaitMaintenance,
        ReportLsn,
        FastForward,
        JoinSecondary,
        Dropped,
    ];

    /// The label used on the wire (SQL enum, NOTIFY payloads, `show state`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Unknown => "unknown",
            Init => "init",
            Single => "single",
            WaitPrimary => "wait_primary",
            Primary => "primary",
            Draining => "draining",
            DemoteTimeout => "demote_timeout",
            Demoted => "demoted",
            CatchingUp => "catchingup",
            Secondary => "secondary",
            PreparePromotion => "prepare_promotion",
            StopReplication => "stop_replication",
            WaitStandby => "wait_standby",
            Maintenance => "maintenance",
            JoinPrimary => "join_primary",
            ApplySettings => "apply_settings",
            PrepareMaintenance => "prepare_maintenance",
            WaitMaintenance => "wait_maintenance",
            ReportLsn => "report_lsn",
            FastForward => "fast_forward",
            JoinSecondary => "join_secondary",
            Dropped => "dropped",
        }
    }

    /// `CanTakeWritesInState`: the node may accept writes in this state.
    pub const fn can_take_writes(self) -> bool {
        matches!(
            self,
            Single | Primary | WaitPrimary | JoinPrimary | ApplySettings
        )
    }

    /// `CanInitiateFailover`: a manual failover may start from this state.
    pub const fn can_initiate_failover(self) -> bool {
        matches!(self, Single | Primary | JoinPrimary)
    }

    /// `StateBelongsToPrimary`: a writable state or one on the way down from it.
    pub const fn belongs_to_primary(self) -> bool {
        self.can_take_writes() || matches!(self, Draining | DemoteTimeout | PrepareMaintenance)
    }

    /// The goal states of a node in maintenance (`IsInMaintenance`).
    pub const fn is_maintenance(self) -> bool {
        matches!(self, PrepareMaintenance | WaitMaintenance | Maintenance)
    }

    /// The connection type `pg_autoctl show state` prints for a node in this
    /// state.
    pub const fn connection_type(self) -> &'static str {
        match self {
            Single | Primary | WaitPrimary | JoinPrimary | PrepareMaintenance | ApplySettings => {
                "read-write"
            }
            Secondary | CatchingUp | PreparePromotion | StopReplication | WaitMaintenance
            | FastForward | JoinSecondary | ReportLsn => "read-only",
            Init | Dropped | WaitStandby | Demoted | DemoteTimeout | Draining | Maintenance
            | Unknown => "none",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state label was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown node state \"{}\"", self.0)
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for NodeState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_keep_sql_order() {
        let labels: Vec<&str> = NodeState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            labels.join(","),
            "unknown,init,single,wait_primary,primary,draining,demote_timeout,demoted,\
             catchingup,secondary,prepare_promotion,stop_replication,wait_standby,\
             maintenance,join_primary,apply_settings,prepare_maintenance,\
             wait_maintenance,report_lsn,fast_forward,join_secondary,dropped"
        );
        for s in NodeState::ALL {
            assert_eq!(s.as_str().parse::<NodeState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        let mut sorted = NodeState::ALL;
        sorted.sort();
        assert_eq!(sorted, NodeState::ALL);
        assert!("Primary".parse::<NodeState>().is_err());
        assert!("".parse::<NodeState>().is_err());
    }

    #[test]
    fn classification_matches_spec() {
        let writable: Vec<_> = NodeState::ALL
            .into_iter()
            .filter(|s| s.can_take_writes())
            .collect();
        assert_eq!(
            writable,
            vec![Single, WaitPrimary, Primary, JoinPrimary, ApplySettings]
        );
        let failover: Vec<_> = NodeState::ALL
            .into_iter()
            .filter(|s| s.can_initiate_failover())
            .collect();
        assert_eq!(failover, vec![Single, Primary, JoinPrimary]);
        let primaryish: Vec<_> = NodeState::ALL
            .into_iter()
            .filter(|s| s.belongs_to_primary())
            .collect();
        assert_eq!(
            primaryish,
            vec![
                Single,
                WaitPrimary,
                Primary,
                Draining,
                DemoteTimeout,
                JoinPrimary,
                ApplySettings,
                PrepareMaintenance
            ]
        );
        assert_eq!(Primary.connection_type(), "read-write");
        assert_eq!(ReportLsn.connection_type(), "read-only");
        assert_eq!(Demoted.connection_type(), "none");
    }
}
