//! The modelled system: a monitor (the real `pgaf_fsm` operations over a
//! group), one keeper per node following the real transition table, the
//! Postgres instances, the network, a clock, and the clients' writes.

use super::pg::{is_prefix, Pg, Rec};
use pgaf_fsm::api::{self, Report};
use pgaf_fsm::keeper::{self, Action};
use pgaf_fsm::standby_names::synchronous_standby_names;
use pgaf_fsm::{Context, Formation, Group, Health, Lsn, Node, NodeState, NodeState::*, Settings};

/// One tick of the model clock.
pub const TICK: i64 = 1_000_000; // 1 s in microseconds
/// Timestamps further in the past than this behave the same.
const HORIZON: i64 = 8;

pub fn settings() -> Settings {
    Settings {
        unhealthy_timeout_ms: 4_000,
        startup_grace_period_ms: 0,
        primary_demote_timeout_ms: 6_000,
        enable_sync_wal_log_threshold: 16,
        promote_wal_log_threshold: 16,
        lease_timeout_ms: 2_000,
        fence_timeout_ms: 1_000,
        // A standby that streams reports age 0: it witnesses its primary
        // within the tick.
        standby_witness_ms: 1_000,
        replication_stall_timeout_ms: 1_000,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keeper {
    pub alive: bool,
    pub current: NodeState,
    pub assigned: NodeState,
    /// Until when (exclusive) the keeper holds its lease, by its own clock:
    /// one tick before the monitor considers it expired.
    pub lease_until: i64,
    /// Postgres is stopped because the keeper fenced it (not because it
    /// failed): reported as running, restarted once the lease is renewed.
    pub fenced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    Heartbeat(usize),
    Step(usize),
    Fence(usize),
    Stream(usize),
    Write(usize),
    Timer,
    Tick,
    Crash(usize),
    Restart(usize),
    Cut(usize, usize),
    Heal(usize, usize),
    Failover,
    Promotion(usize),
    Priority(usize, i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct World {
    pub now: i64,
    pub group: Group,
    pub keepers: Vec<Keeper>,
    pub pgs: Vec<Pg>,
    /// Down links, bit `pair(a, b)`; the monitor is index `n`.
    pub down: u32,
    /// Writes waiting for synchronous standbys: (origin node, write id).
    pub pending: Vec<(usize, u8)>,
    /// Acknowledged writes: (write id, acknowledged with synchronous standbys).
    pub acked: Vec<(u8, bool)>,
    pub next_write: u8,
    pub budget: Budget,
}

/// How many of each kind of event may still happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    pub crashes: u8,
    pub cuts: u8,
    pub writes: u8,
    pub operator: u8,
}

impl World {
    pub fn n(&self) -> usize {
        self.keepers.len()
    }

    fn id(i: usize) -> i64 {
        i as i64 + 1
    }

    fn pair(a: usize, b: usize) -> u32 {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        1 << (a * 5 + b)
    }

    pub fn link_up(&self, a: usize, b: usize) -> bool {
        a == b || self.down & World::pair(a, b) == 0
    }

    fn monitor(&self) -> usize {
        self.n()
    }

    pub fn ctx(&self) -> Context {
        Context::new(self.now, 0, settings())
    }

    /// A steady group: node 0 primary, the others secondaries streaming from
    /// it, every keeper holding a fresh lease.
    pub fn steady(n: usize, budget: Budget) -> World {
        let now = 100 * TICK;
        let mut nodes = vec![];
        for i in 0..n {
            let id = World::id(i);
            let mut node = Node::new(id, &format!("node{id}"), &format!("h{id}"), 5432, now);
            node.goal = if i == 0 { Primary } else { Secondary };
            node.reported = node.goal;
            node.health = Health::Good;
            node.candidate_priority = 50;
            node.lease = true;
            node.sysidentifier = Some(1);
            node.lsn = Lsn(0x100_0000);
            node.delivered = node.goal;
            nodes.push(node);
        }
        let mut f = Formation::default_formation();
        f.number_sync_standbys = if n > 2 { 1 } else { 0 };
        let group = Group::new(f, 0, nodes);
        let members: u8 = (1..n).fold(0, |m, i| m | (1 << i));
        let k = 1;
        let pgs = (0..n)
            .map(|i| Pg {
                data: true,
                running: true,
                recovery: i != 0,
                read_only: false,
                wal: vec![],
                upstream: (i != 0).then_some(0),
                ssn: (i == 0).then_some((k, members)),
            })
            .collect();
        let keepers = (0..n)
            .map(|i| {
                let s = if i == 0 { Primary } else { Secondary };
                Keeper {
                    alive: true,
                    current: s,
                    assigned: s,
                    lease_until: now + 2 * TICK - TICK,
                    fenced: false,
                }
            })
            .collect();
        World {
            now,
            group,
            keepers,
            pgs,
            down: 0,
            pending: vec![],
            acked: vec![],
            next_write: 0,
            budget,
        }
    }

    /// Make timestamps relative to the clock (capped), so that states that
    /// behave the same compare equal.
    pub fn canonical(&mut self) {
        let base = 1_000 * TICK;
        let shift = |t: i64, now: i64| base - ((now - t).clamp(-HORIZON * TICK, HORIZON * TICK));
        for node in &mut self.group.nodes {
            node.report_time = shift(node.report_time, self.now);
            node.streamed_time = shift(node.streamed_time, self.now);
            node.wal_report_time = base;
            node.health_check_time = base;
            node.state_change_time = shift(node.state_change_time, self.now);
        }
        for k in &mut self.keepers {
            k.lease_until = shift(k.lease_until, self.now);
        }
        self.now = base;
    }

    // ----- what keepers observe -----

    /// `node_active` as the keeper of node `i` calls it.
    fn report(&self, i: usize) -> Report {
        let pg = &self.pgs[i];
        // A standby says which node it streams from; a primary which
        // standbys stream from it (keeper/src/node/service.rs).
        let (upstream_node_id, upstream_age_ms) = match pg.upstream {
            Some(u) if self.streams_from(i, u) => (World::id(u), 0),
            _ => (0, -1),
        };
        let streaming = (pg.running && !pg.recovery).then(|| {
            (0..self.n())
                .filter(|&j| self.streams_from(j, i))
                .map(World::id)
                .collect()
        });
        Report {
            node_id: World::id(i),
            group_id: 0,
            state: self.keepers[i].current,
            pg_is_running: pg.running || self.keepers[i].fenced,
            tli: if pg.data { pg.tli() } else { 0 },
            lsn: if pg.data { Lsn(pg.lsn()) } else { Lsn::ZERO },
            rep_state: String::new(),
            lease: true,
            upstream_node_id,
            upstream_age_ms,
            streaming,
        }
    }

    fn lease_valid(&self, i: usize) -> bool {
        self.now < self.keepers[i].lease_until
    }

    /// Node `j` streams from node `i` right now.
    pub fn streams_from(&self, j: usize, i: usize) -> bool {
        let (pj, pi) = (&self.pgs[j], &self.pgs[i]);
        j != i
            && pj.running
            && pj.recovery
            && pj.upstream == Some(i)
            && pi.running
            && self.link_up(i, j)
            && is_prefix(&pj.wal, &pi.wal)
    }

    /// The keeper of `i` must fence its Postgres now: it accepts writes, its
    /// lease ran out, and not every other node streams from it.
    pub fn must_fence(&self, i: usize) -> bool {
        let k = &self.keepers[i];
        k.alive
            && self.pgs[i].writable()
            && !self.lease_valid(i)
            && !(0..self.n())
                .filter(|&j| j != i)
                .all(|j| self.streams_from(j, i))
    }

    /// Node `i` can acknowledge commits right now.
    pub fn can_ack(&self, i: usize) -> bool {
        let pg = &self.pgs[i];
        if !pg.writable() {
            return false;
        }
        match pg.ssn {
            None => true,
            Some((k, members)) => {
                let streaming = (0..self.n())
                    .filter(|&j| members & (1 << j) != 0 && self.streams_from(j, i))
                    .count();
                streaming >= k as usize
            }
        }
    }

    // ----- actions -----

    /// Every action enabled in this state.
    pub fn enabled(&self, operator: bool) -> Vec<Act> {
        let n = self.n();
        let mut acts = vec![];
        let urgent: Vec<usize> = (0..n).filter(|&i| self.must_fence(i)).collect();
        for i in 0..n {
            let k = &self.keepers[i];
            if k.alive {
                if self.link_up(i, self.monitor()) {
                    acts.push(Act::Heartbeat(i));
                }
                acts.push(Act::Step(i));
                if urgent.contains(&i) {
                    acts.push(Act::Fence(i));
                }
                if self.budget.crashes > 0 {
                    acts.push(Act::Crash(i));
                }
            } else {
                acts.push(Act::Restart(i));
            }
            let pg = &self.pgs[i];
            if let Some(u) = pg.upstream {
                if pg.running && pg.recovery && self.link_up(i, u) && self.pgs[u].running {
                    let src = &self.pgs[u].wal;
                    if src.len() > pg.wal.len() && is_prefix(&pg.wal, src) {
                        acts.push(Act::Stream(i));
                    }
                }
            }
            if self.budget.writes > 0 && pg.writable() {
                acts.push(Act::Write(i));
            }
        }
        acts.push(Act::Timer);
        if urgent.is_empty() {
            acts.push(Act::Tick);
        }
        for a in 0..=n {
            for b in a + 1..=n {
                if self.link_up(a, b) {
                    if self.budget.cuts > 0 {
                        acts.push(Act::Cut(a, b));
                    }
                } else {
                    acts.push(Act::Heal(a, b));
                }
            }
        }
        if operator && self.budget.operator > 0 {
            acts.push(Act::Failover);
            for i in 0..n {
                acts.push(Act::Promotion(i));
                let cp = self
                    .group
                    .node(World::id(i))
                    .map_or(0, |x| x.candidate_priority);
                acts.push(Act::Priority(i, if cp > 0 { 0 } else { 50 }));
            }
        }
        acts
    }

    /// Apply an action. Returns `Err` with a description when an invariant
    /// that depends on the action itself is violated.
    pub fn apply(&mut self, act: Act) -> Result<(), String> {
        let before: Vec<(NodeState, i32)> = self
            .group
            .nodes
            .iter()
            .map(|n| (n.goal, n.candidate_priority))
            .collect();
        match act {
            Act::Heartbeat(i) => {
                let r = self.report(i);
                let ctx = self.ctx();
                let out = api::node_active(&ctx, &mut self.group, "default", &r)
                    .map_err(|e| format!("node_active of node{} failed: {e}", World::id(i)))?;
                {
                    let goal = out.value.goal;
                    self.keepers[i].assigned = goal;
                    if goal.can_take_writes() {
                        self.keepers[i].lease_until = self.now + 2 * TICK - TICK;
                    }
                }
            }
            Act::Step(i) => self.step(i)?,
            // Immediate shutdown; the keeper keeps its state and restarts
            // Postgres once its lease is renewed with a writable goal.
            Act::Fence(i) => {
                self.stop(i);
                self.keepers[i].fenced = true;
            }
            Act::Stream(i) => {
                let u = self.pgs[i].upstream.expect("enabled only with an upstream");
                self.pgs[i].wal = self.pgs[u].wal.clone();
            }
            Act::Write(i) => {
                let w = self.next_write;
                self.next_write += 1;
                self.budget.writes -= 1;
                self.pgs[i].wal.push(Rec::Write(w));
                if self.pgs[i].ssn.is_none() {
                    self.acked.push((w, false));
                } else {
                    self.pending.push((i, w));
                }
            }
            Act::Timer => {
                let ctx = self.ctx();
                api::evaluate_group(&ctx, &mut self.group)
                    .map_err(|e| format!("evaluate_group failed: {e}"))?;
            }
            Act::Tick => self.now += TICK,
            Act::Crash(i) => {
                self.budget.crashes -= 1;
                self.keepers[i].alive = false;
                self.keepers[i].fenced = false;
                self.stop(i);
            }
            Act::Restart(i) => {
                self.keepers[i].alive = true;
                self.keepers[i].lease_until = 0;
            }
            Act::Cut(a, b) => {
                self.budget.cuts -= 1;
                self.down |= World::pair(a, b);
            }
            Act::Heal(a, b) => self.down &= !World::pair(a, b),
            Act::Failover => {
                self.budget.operator -= 1;
                let ctx = self.ctx();
                let _ = api::perform_failover(&ctx, &mut self.group);
            }
            Act::Promotion(i) => {
                self.budget.operator -= 1;
                let ctx = self.ctx();
                let name = format!("node{}", World::id(i));
                let _ = api::perform_promotion(&ctx, &mut self.group, &name);
            }
            Act::Priority(i, cp) => {
                self.budget.operator -= 1;
                let ctx = self.ctx();
                let name = format!("node{}", World::id(i));
                let _ = api::set_node_candidate_priority(&ctx, &mut self.group, &name, cp);
            }
        }
        self.settle_acks();
        self.check_promotions(&before)
    }

    /// A clean (fast) shutdown: walsenders send every WAL record to the
    /// standbys streaming from this node before it stops.
    fn clean_stop(&mut self, i: usize) {
        for j in 0..self.n() {
            if self.streams_from(j, i) {
                self.pgs[j].wal = self.pgs[i].wal.clone();
            }
        }
        self.settle_acks();
        self.stop(i);
    }

    /// Postgres stops (crash, or immediate shutdown when fencing).
    fn stop(&mut self, i: usize) {
        self.pgs[i].running = false;
        // Commits waiting for standbys fail with the backend.
        self.pending.retain(|&(o, _)| o != i);
    }

    /// Acknowledge every pending write whose synchronous standbys have it.
    fn settle_acks(&mut self) {
        let mut acked = vec![];
        for &(o, w) in &self.pending {
            let pg = &self.pgs[o];
            if !pg.running || pg.recovery {
                continue;
            }
            match pg.ssn {
                None => acked.push((o, w, false)),
                Some((k, members)) => {
                    let have = (0..self.n())
                        .filter(|&j| members & (1 << j) != 0 && self.pgs[j].contains(w))
                        .count();
                    if have >= k as usize {
                        acked.push((o, w, true));
                    }
                }
            }
        }
        for (o, w, sync) in acked {
            self.pending.retain(|&p| p != (o, w));
            self.acked.push((w, sync));
        }
    }

    /// The monitor never selects a priority-0 node for promotion, nor one
    /// that would end up further behind than the promote threshold (a
    /// `fast_forward` candidate first fetches the most advanced WAL).
    fn check_promotions(&self, before: &[(NodeState, i32)]) -> Result<(), String> {
        for (n, (goal, _)) in self.group.nodes.iter().zip(before) {
            let selected = matches!(n.goal, PreparePromotion | FastForward)
                && *goal != n.goal
                && *goal != FastForward;
            if !selected {
                continue;
            }
            if n.candidate_priority <= 0 {
                return Err(format!(
                    "node{} with candidate priority {} sent to {}",
                    n.id, n.candidate_priority, n.goal
                ));
            }
            let mut will_have = n.lsn;
            if n.goal == FastForward {
                if let Some(m) = self.group.most_advanced_reporting_standby(Some(n.id)) {
                    will_have = will_have.max(m.lsn);
                }
            }
            let old = self
                .group
                .nodes
                .iter()
                .filter(|o| o.id != n.id && o.reported.belongs_to_primary())
                .map(|o| o.lsn)
                .max();
            if let Some(old) = old {
                if will_have.0 + 16 < old.0 {
                    return Err(format!(
                        "node{} selected at {}, old primary reported {}",
                        n.id, will_have, old
                    ));
                }
            }
        }
        Ok(())
    }

    // ----- the keeper -----

    /// One iteration of the keeper's loop after its monitor call: run the
    /// transition to the assigned state, or enforce the current state.
    fn step(&mut self, i: usize) -> Result<(), String> {
        let k = self.keepers[i].clone();
        if k.assigned == k.current {
            self.ensure(i);
            return Ok(());
        }
        let Some(t) = keeper::transition(k.current, k.assigned) else {
            return Err(format!(
                "node{} cannot go from {} to {}",
                World::id(i),
                k.current,
                k.assigned
            ));
        };
        if keeper::ensure_before_transition(k.current, k.assigned) {
            self.ensure(i);
        }
        // Our keeper never opens a node for writes without a lease.
        if k.assigned.can_take_writes() && !self.lease_valid(i) {
            return Ok(());
        }
        let saved = self.pgs[i].clone();
        self.keepers[i].fenced = false;
        for a in t.actions {
            if !self.action(i, *a) {
                // The transition failed: Postgres may have been changed by
                // the steps done so far, the state stays; retried next loop.
                if saved.running && !self.pgs[i].running {
                    self.stop(i);
                }
                return Ok(());
            }
        }
        self.keepers[i].current = k.assigned;
        Ok(())
    }

    /// "Ensure current state", by the shared table.
    fn ensure(&mut self, i: usize) {
        use keeper::Expect;
        let s = self.keepers[i].current;
        if !self.pgs[i].data {
            return;
        }
        match keeper::expect(s) {
            Expect::RunningPrimary => {
                let pg = &self.pgs[i];
                if !pg.running && self.lease_valid(i) && !pg.recovery {
                    self.pgs[i].running = true;
                    self.keepers[i].fenced = false;
                }
            }
            Expect::FollowingPrimary => {
                self.pgs[i].running = true;
                if let Some(p) = self.primary_for(i) {
                    let primary_goal = self.group.node(World::id(p)).map(|n| n.goal);
                    let diverged = !is_prefix(&self.pgs[i].wal, &self.pgs[p].wal);
                    if primary_goal.is_some_and(|g| g.can_take_writes())
                        && (self.pgs[i].upstream != Some(p) || diverged)
                        && self.pgs[i].recovery
                    {
                        // Re-point, rewinding when the WAL diverged (the
                        // walreceiver reports a timeline fork).
                        self.action(i, Action::FollowPrimary);
                    }
                }
            }
            Expect::Running => self.pgs[i].running = true,
            Expect::Stopped => {
                if self.pgs[i].running {
                    self.stop(i);
                }
            }
            Expect::Nothing => {}
        }
    }

    /// The node the monitor says is the primary, reachable by node `i`.
    fn primary_for(&self, i: usize) -> Option<usize> {
        if !self.link_up(i, self.monitor()) {
            return None;
        }
        let p = self.group.primary_or_demoted()?;
        let p = (p.id - 1) as usize;
        (p != i && self.link_up(i, p) && self.pgs[p].running).then_some(p)
    }

    /// Carry out one abstract action on Postgres; false when it fails.
    fn action(&mut self, i: usize, a: Action) -> bool {
        use Action::*;
        match a {
            InitPrimary => {
                let pg = &mut self.pgs[i];
                pg.data = true;
                pg.running = true;
                pg.recovery = false;
                true
            }
            BaseBackupFromPrimary | RewindOrBaseBackup => {
                let Some(p) = self.primary_for(i) else {
                    return false;
                };
                let wal = self.pgs[p].wal.clone();
                let pg = &mut self.pgs[i];
                pg.data = true;
                pg.wal = wal;
                pg.recovery = true;
                pg.read_only = false;
                pg.ssn = None;
                pg.upstream = Some(p);
                pg.running = true;
                true
            }
            BaseBackupFromStandby | FetchMissingWal => {
                if !self.link_up(i, self.monitor()) {
                    return false;
                }
                let most = self
                    .group
                    .most_advanced_reporting_standby(Some(World::id(i)));
                let Some(src) = most.map(|n| (n.id - 1) as usize) else {
                    return a == FetchMissingWal;
                };
                if !self.link_up(i, src) || !self.pgs[src].running {
                    return false;
                }
                let wal = self.pgs[src].wal.clone();
                let pg = &mut self.pgs[i];
                pg.data = true;
                pg.wal = wal;
                pg.recovery = true;
                pg.upstream = None;
                pg.running = true;
                true
            }
            StartPostgres => {
                if self.pgs[i].data {
                    self.pgs[i].running = true;
                }
                self.pgs[i].data
            }
            StopPostgres | CheckpointAndStop => {
                if self.pgs[i].running {
                    self.clean_stop(i);
                }
                true
            }
            Promote => {
                let pg = &mut self.pgs[i];
                if !pg.data {
                    return false;
                }
                pg.running = true;
                if pg.recovery {
                    pg.recovery = false;
                    pg.upstream = None;
                    pg.wal.push(Rec::Promote);
                }
                true
            }
            FollowPrimary => {
                let Some(p) = self.primary_for(i) else {
                    return false;
                };
                let primary_wal = self.pgs[p].wal.clone();
                let pg = &mut self.pgs[i];
                if !pg.recovery || !pg.data {
                    return false;
                }
                if !is_prefix(&pg.wal, &primary_wal) {
                    // pg_rewind
                    pg.wal = primary_wal;
                }
                pg.upstream = Some(p);
                pg.running = true;
                true
            }
            DisconnectFromUpstream => {
                let pg = &mut self.pgs[i];
                if !pg.data {
                    return false;
                }
                pg.upstream = None;
                pg.recovery = true;
                pg.running = true;
                pg.ssn = None;
                true
            }
            StandbyCleanup | ManageSlots | MaintainStandbySlots | DropReplicationSlots => true,
            SetReadOnly => {
                self.pgs[i].read_only = true;
                true
            }
            SetReadWrite => {
                self.pgs[i].read_only = false;
                true
            }
            DisableSyncRep => {
                self.pgs[i].ssn = None;
                // Waiting commits are released (acknowledged asynchronously).
                let released: Vec<u8> = self
                    .pending
                    .iter()
                    .filter(|p| p.0 == i)
                    .map(|p| p.1)
                    .collect();
                self.pending.retain(|p| p.0 != i);
                self.acked.extend(released.into_iter().map(|w| (w, false)));
                true
            }
            ApplySyncStandbyNames => {
                if !self.link_up(i, self.monitor()) {
                    return false;
                }
                let Ok(ssn) = synchronous_standby_names(&self.group) else {
                    return false;
                };
                self.pgs[i].ssn = parse_ssn(&ssn);
                true
            }
            WaitForSyncStandby => {
                let pg = &self.pgs[i];
                match pg.ssn {
                    None => true,
                    Some((_, members)) => (0..self.n()).any(|j| {
                        members & (1 << j) != 0
                            && self.streams_from(j, i)
                            && self.pgs[j].wal.len() >= pg.wal.len()
                    }),
                }
            }
            CheckTimeline => match self.pgs[i].upstream {
                Some(u) => self.link_up(i, u) && is_prefix(&self.pgs[i].wal, &self.pgs[u].wal),
                None => false,
            },
            PrepareStandbySetup => {
                let Some(p) = self.primary_for(i) else {
                    return false;
                };
                let pg = &mut self.pgs[i];
                pg.upstream = Some(p);
                pg.recovery = true;
                true
            }
            ReleasePostgres => true,
        }
    }

    // ----- invariants -----

    /// Invariants that must hold in every state.
    pub fn check(&self) -> Result<(), String> {
        let acking: Vec<usize> = (0..self.n()).filter(|&i| self.can_ack(i)).collect();
        if acking.len() > 1 {
            return Err(format!(
                "split brain: nodes {acking:?} can both acknowledge commits"
            ));
        }
        for i in 0..self.n() {
            if !self.pgs[i].writable() {
                continue;
            }
            // Every acknowledged write counts, also one a primary
            // acknowledged alone (wait_primary, single).
            for &(w, sync) in &self.acked {
                if !self.pgs[i].contains(w) {
                    return Err(format!(
                        "node{} accepts writes without write {w}, acknowledged {}",
                        World::id(i),
                        if sync {
                            "by synchronous standbys"
                        } else {
                            "by a primary alone"
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// Primary plus secondaries, every standby streaming from the primary.
    pub fn healthy(&self) -> bool {
        let n = self.n();
        let Some(p) = (0..n).find(|&i| self.keepers[i].current == Primary) else {
            return false;
        };
        let node = |i: usize| self.group.node(World::id(i));
        node(p).is_some_and(|x| x.is(Primary))
            && self.pgs[p].writable()
            && (0..n).filter(|&i| i != p).all(|i| {
                self.keepers[i].current == Secondary
                    && node(i).is_some_and(|x| x.is(Secondary))
                    && self.streams_from(i, p)
                    && self.pgs[i].wal == self.pgs[p].wal
            })
    }

    /// Faults stop: heal the network, restart every keeper, then let every
    /// component run in turn. Returns the number of rounds it took to be
    /// healthy again, or why it did not.
    pub fn recover(&self, max_rounds: usize) -> Result<usize, String> {
        // Fast without the log, which only a failure needs (the run is
        // deterministic, so a second run with the log fails the same way).
        let mut w = self.recovery_start();
        for round in 0..max_rounds {
            if w.healthy() {
                return Ok(round);
            }
            if World::recovery_round(&mut w, &mut World::act_checked).is_err() {
                break;
            }
        }
        self.recover_logged(max_rounds)
    }

    /// Faults stop: no more budget, the network heals, keepers run.
    fn recovery_start(&self) -> World {
        let mut w = self.clone();
        w.down = 0;
        w.budget = Budget {
            crashes: 0,
            cuts: 0,
            writes: 0,
            operator: 0,
        };
        for k in &mut w.keepers {
            k.alive = true;
        }
        w
    }

    /// `act`, then the invariants.
    fn act_checked(w: &mut World, act: Act) -> Result<(), String> {
        w.apply(act)
            .and_then(|_| w.check())
            .map_err(|e| e.to_string())
    }

    /// One round of recovery, each action through `run`: every keeper
    /// reports, steps and streams, then the monitor's timer, the fences
    /// due, and a tick.
    fn recovery_round(
        w: &mut World,
        run: &mut impl FnMut(&mut World, Act) -> Result<(), String>,
    ) -> Result<(), String> {
        for i in 0..w.n() {
            for act in [Act::Heartbeat(i), Act::Step(i), Act::Stream(i)] {
                if w.enabled(false).contains(&act) {
                    run(w, act)?;
                }
            }
        }
        run(w, Act::Timer)?;
        while let Some(i) = (0..w.n()).find(|&i| w.must_fence(i)) {
            run(w, Act::Fence(i))?;
        }
        run(w, Act::Tick)
    }

    /// As [`World::recover`], sharing work between the states of an
    /// exploration: `known` holds the fingerprints (of canonical forms)
    /// of states already shown to recover. A walk that reaches one stops
    /// there, and a walk that recovers adds the states it went through.
    /// Recovery from a canonical form is recovery under a renaming of the
    /// nodes, which is as good.
    pub fn recover_known(
        &self,
        max_rounds: usize,
        known: &mut std::collections::HashSet<u64>,
        fingerprint: impl Fn(&World) -> u64,
    ) -> Result<usize, String> {
        let mut w = self.recovery_start();
        let mut walk = Vec::new();
        for round in 0..max_rounds {
            let mut c = w.clone();
            c.canonical();
            let f = fingerprint(&c);
            if w.healthy() || known.contains(&f) {
                known.extend(walk);
                known.insert(f);
                return Ok(round);
            }
            walk.push(f);
            if World::recovery_round(&mut w, &mut World::act_checked).is_err() {
                break;
            }
        }
        // Failed: again with the log, for the report.
        self.recover_logged(max_rounds)
    }

    /// The recovery of [`World::recover`], logging every change of state
    /// for the failure report.
    fn recover_logged(&self, max_rounds: usize) -> Result<usize, String> {
        let mut w = self.recovery_start();
        let mut log: Vec<String> = vec![];
        let mut run = |w: &mut World, act: Act| -> Result<(), String> {
            let before = w.summary();
            let tail = |log: &Vec<String>| log[log.len().saturating_sub(30)..].join("\n");
            w.apply(act).and_then(|_| w.check()).map_err(|e| {
                format!(
                    "{e}\nrecovery steps (last changes):\n{}\n  {act:?}\n    {}",
                    tail(&log),
                    w.summary()
                )
            })?;
            let after = w.summary();
            if after != before {
                log.push(format!("  {act:?}\n    {after}"));
            }
            Ok(())
        };
        for round in 0..max_rounds {
            if w.healthy() {
                return Ok(round);
            }
            World::recovery_round(&mut w, &mut run)?;
        }
        let tail = log.len().saturating_sub(40);
        Err(format!(
            "not healthy after {max_rounds} rounds: {}\nrecovery steps (last 40 changes):\n{}",
            w.summary(),
            log[tail..].join("\n")
        ))
    }

    pub fn summary(&self) -> String {
        (0..self.n())
            .map(|i| {
                let node = self.group.node(World::id(i));
                let pg = &self.pgs[i];
                format!(
                    "node{} keeper {}{}->{} monitor {}/{} pg {}{}{} wal {} up {:?} ssn {:?}",
                    World::id(i),
                    if self.keepers[i].alive { "" } else { "DEAD " },
                    self.keepers[i].current,
                    self.keepers[i].assigned,
                    node.map_or(Unknown, |x| x.reported),
                    node.map_or(Unknown, |x| x.goal),
                    if pg.running { "run" } else { "stop" },
                    if pg.recovery { " standby" } else { " primary" },
                    if pg.read_only { " ro" } else { "" },
                    pg.wal.len(),
                    pg.upstream.map(|u| u + 1),
                    pg.ssn,
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `ANY k (pgautofailover_standby_<id>, ...)` as (k, member bitmask).
fn parse_ssn(s: &str) -> Option<(u8, u8)> {
    let rest = s.strip_prefix("ANY ")?;
    let (k, names) = rest.split_once(" (")?;
    let k: u8 = k.parse().ok()?;
    let mut members = 0u8;
    for name in names.trim_end_matches(')').split(", ") {
        let id: usize = name.strip_prefix("pgautofailover_standby_")?.parse().ok()?;
        members |= 1 << (id - 1);
    }
    Some((k, members))
}
