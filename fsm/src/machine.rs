//! The evaluation engine shared by the rules: a group snapshot being
//! mutated, the clock, and the ordered effects produced so far.

use crate::effect::{Effect, NoticeLevel, SqlState};
use crate::node::{Group, Node};
use crate::settings::Context;
use crate::state::NodeState;

/// One evaluation of the state machine over one group.
pub struct Machine<'a> {
    pub ctx: &'a Context,
    pub group: &'a mut Group,
    pub effects: Vec<Effect>,
}

impl<'a> Machine<'a> {
    pub fn new(ctx: &'a Context, group: &'a mut Group) -> Machine<'a> {
        Machine {
            ctx,
            group,
            effects: Vec::new(),
        }
    }

    /// A node of the group. Ids come from the group itself, so a miss is a
    /// programming error.
    pub fn n(&self, id: i64) -> &Node {
        self.group
            .node(id)
            .expect("node ids handled by the state machine come from its group")
    }

    fn n_mut(&mut self, id: i64) -> &mut Node {
        self.group
            .node_mut(id)
            .expect("node ids handled by the state machine come from its group")
    }

    /// A message for the log channel only.
    pub fn log(&mut self, message: String) {
        self.effects.push(Effect::Log(message));
    }

    /// An event row and `state` notification for the node as it is now.
    pub fn event(&mut self, id: i64, description: &str) {
        let node = self.n(id).clone();
        self.effects.push(Effect::Event {
            node,
            description: description.to_string(),
        });
    }

    /// Log a rule's description once, then assign each goal with its event.
    pub fn assign_all(&mut self, assignments: &[(i64, NodeState)], description: String) {
        self.log(description.clone());
        for &(id, goal) in assignments {
            let now = self.ctx.now;
            let n = self.n_mut(id);
            n.goal = goal;
            n.state_change_time = now;
            self.event(id, &description);
        }
    }

    /// Assign one goal state (log line + event).
    pub fn assign(&mut self, id: i64, goal: NodeState, description: String) {
        self.assign_all(&[(id, goal)], description);
    }

    /// Change a node's candidate priority, with its log line and event.
    pub fn set_priority(&mut self, id: i64, priority: i32, description: String) {
        self.n_mut(id).candidate_priority = priority;
        self.log(description.clone());
        self.event(id, &description);
    }

    pub fn notice(
        &mut self,
        level: NoticeLevel,
        code: SqlState,
        message: String,
        detail: Option<String>,
    ) {
        self.effects.push(Effect::Notice {
            level,
            code,
            message,
            detail,
        });
    }

    /// Remove a node from the snapshot (the caller deletes the row).
    pub fn delete(&mut self, id: i64) {
        self.group.nodes.retain(|n| n.id != id);
    }
}
