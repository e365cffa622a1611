//! The `get` and `set` command words: node
//! properties ([`super::node_props`]) and formation properties
//! ([`super::formation_props`], `get formation settings` =
//! [`super::show::settings`]).

use super::exit::CmdResult;
use super::formation_props::{self, FormationArgs, SetNssArgs};
use super::node_props::{self, MetadataArgs, NodeArgs, SetPriorityArgs, SetQuorumArgs};
use super::show::settings::{self, SettingsArgs};
use super::{Globals, PgdataArg};

#[derive(Debug, clap::Subcommand)]
pub enum Get {
    /// Get a node property from the pg_auto_failover monitor
    #[command(subcommand)]
    Node(GetNode),
    /// Get a formation property from the pg_auto_failover monitor
    #[command(subcommand)]
    Formation(GetFormation),
}

#[derive(Debug, clap::Subcommand)]
pub enum GetNode {
    /// Get the candidate priority of a node
    CandidatePriority(NodeArgs),
    /// Get the replication quorum property of a node
    ReplicationQuorum(NodeArgs),
    /// Get the node id, group, name, hostname and port of a node
    Metadata(NodeArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum GetFormation {
    /// Get replication settings for a formation from the monitor
    Settings(SettingsArgs),
    /// Get number-sync-standbys for a formation from the monitor
    NumberSyncStandbys(FormationArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum Set {
    /// Set a node property on the monitor
    #[command(subcommand)]
    Node(SetNode),
    /// Set a formation property on the monitor
    #[command(subcommand)]
    Formation(SetFormation),
}

#[derive(Debug, clap::Subcommand)]
pub enum SetNode {
    /// Set the candidate priority of a node (0..100) on the monitor
    CandidatePriority(SetPriorityArgs),
    /// Set the replication quorum property of a node on the monitor
    ReplicationQuorum(SetQuorumArgs),
    /// Set the name, hostname or port of this node on the monitor
    Metadata(MetadataArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum SetFormation {
    /// Set number-sync-standbys for a formation on the monitor
    NumberSyncStandbys(SetNssArgs),
}

impl Get {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Get::Node(
                GetNode::CandidatePriority(a)
                | GetNode::ReplicationQuorum(a)
                | GetNode::Metadata(a),
            ) => &a.target.pgdata,
            Get::Formation(GetFormation::Settings(a)) => &a.target.pgdata,
            Get::Formation(GetFormation::NumberSyncStandbys(a)) => &a.target.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Get::Node(GetNode::CandidatePriority(a)) => node_props::get_priority(a, g).await,
            Get::Node(GetNode::ReplicationQuorum(a)) => node_props::get_quorum(a, g).await,
            Get::Node(GetNode::Metadata(a)) => node_props::get_metadata(a, g).await,
            Get::Formation(GetFormation::Settings(a)) => settings::run(a, g).await,
            Get::Formation(GetFormation::NumberSyncStandbys(a)) => {
                formation_props::get_nss(a, g).await
            }
        }
    }
}

impl Set {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Set::Node(SetNode::CandidatePriority(a)) => &a.node.target.pgdata,
            Set::Node(SetNode::ReplicationQuorum(a)) => &a.node.target.pgdata,
            Set::Node(SetNode::Metadata(a)) => &a.pgdata,
            Set::Formation(SetFormation::NumberSyncStandbys(a)) => &a.formation.target.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Set::Node(SetNode::CandidatePriority(a)) => node_props::set_priority(a, g).await,
            Set::Node(SetNode::ReplicationQuorum(a)) => node_props::set_quorum(a, g).await,
            Set::Node(SetNode::Metadata(a)) => node_props::set_metadata(a, g).await,
            Set::Formation(SetFormation::NumberSyncStandbys(a)) => {
                formation_props::set_nss(a, g).await
            }
        }
    }
}
