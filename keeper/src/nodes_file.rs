//! The nodes file of a keeper running without a monitor
//! (`pg_autoctl do fsm nodes set`): the other nodes of its group, which the
//! monitor would otherwise list, as a JSON array of
//! `{node_id, node_name, node_host, node_port, node_lsn, node_is_primary}`.
//! Kept next to the state file as `nodes.json`; parsing and the table that
//! `do fsm nodes get|set` and `do monitor get others` print, no I/O besides
//! [`load`].

use crate::monitor::NodeAddr;
use pgaf_fsm::Lsn;
use serde::Deserialize;
use std::path::Path;

/// At most this many entries (as upstream).
const MAX_NODES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error(
        "the nodes file must be a JSON array of objects with the properties \
         {{node_id: number, node_name: string, node_host: string, node_port: number, \
         node_lsn: string, node_is_primary: boolean}}: {0}"
    )]
    Shape(String),
    #[error("the nodes file lists {0} nodes, at most {MAX_NODES} are supported")]
    TooMany(usize),
    #[error("node {id}: node_lsn \"{lsn}\" is not an LSN such as 0/3000060")]
    Lsn { id: i64, lsn: String },
    #[error("node {id}: node_port {port} is not a TCP port")]
    Port { id: i64, port: i64 },
    #[error("the nodes file lists node {0} twice")]
    Duplicate(i64),
    #[error("the nodes file lists more than one primary (nodes {0} and {1})")]
    TwoPrimaries(i64, i64),
    #[error("cannot read the nodes file \"{path}\": {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
struct Entry {
    node_id: i64,
    node_name: String,
    node_host: String,
    node_port: i64,
    node_lsn: String,
    node_is_primary: bool,
}

/// The nodes in `text` other than `own_id`, sorted by node id.
pub fn parse(text: &str, own_id: i64) -> Result<Vec<NodeAddr>, NodesError> {
    let entries: Vec<Entry> =
        serde_json::from_str(text).map_err(|e| NodesError::Shape(e.to_string()))?;
    if entries.len() > MAX_NODES {
        return Err(NodesError::TooMany(entries.len()));
    }
    let mut nodes: Vec<NodeAddr> = Vec::with_capacity(entries.len());
    let mut primary: Option<i64> = None;
    for e in entries {
        let lsn: Lsn = e.node_lsn.parse().map_err(|_| NodesError::Lsn {
            id: e.node_id,
            lsn: e.node_lsn.clone(),
        })?;
        let port = u16::try_from(e.node_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(NodesError::Port {
                id: e.node_id,
                port: e.node_port,
            })?;
        if nodes.iter().any(|n| n.id == e.node_id) {
            return Err(NodesError::Duplicate(e.node_id));
        }
        if e.node_is_primary {
            if let Some(p) = primary {
                return Err(NodesError::TwoPrimaries(p, e.node_id));
            }
            primary = Some(e.node_id);
        }
        nodes.push(NodeAddr {
            id: e.node_id,
            name: e.node_name,
            host: e.node_host,
            port,
            lsn,
            is_primary: e.node_is_primary,
        });
    }
    nodes.retain(|n| n.id != own_id);
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// The nodes file at `path`; none when it does not exist.
pub fn load(path: &Path, own_id: i64) -> Result<Vec<NodeAddr>, NodesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, own_id),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(NodesError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The node table: name, id, `host:port`, `TLI: LSN`, whether primary.
/// The monitor does not tell timelines: they show as 0, as upstream's.
/// The fourth column of the separator is upstream's too: 18 dashes,
/// right-aligned in 21 columns.
pub fn table(nodes: &[NodeAddr]) -> String {
    let wide = |min: usize, f: &dyn Fn(&NodeAddr) -> usize| {
        if nodes.is_empty() {
            0
        } else {
            nodes.iter().map(f).max().unwrap_or(0).max(min)
        }
    };
    let wn = wide(4, &|n| n.name.len());
    let wi = wide(5, &|n| n.id.to_string().len());
    let wh = wide(9, &|n| n.host.len() + 1 + n.port.to_string().len());
    let mut out = format!(
        "{:>wn$} | {:>wi$} | {:>wh$} | {:>21} | {:>8}\n",
        "Name", "Node", "Host:Port", "TLI: LSN", "Primary?"
    );
    out += &format!(
        "{}-+-{}-+-{}-+-{:>21}-+-{:>8}\n",
        "-".repeat(wn),
        "-".repeat(wi),
        "-".repeat(wh),
        "-".repeat(18),
        "-".repeat(8)
    );
    for n in nodes {
        out += &format!(
            "{:>wn$} | {:>wi$} | {:>wh$} | {:>21} | {:>8}\n",
            n.name,
            n.id,
            format!("{}:{}", n.host, n.port),
            format!("{:3}: {}", 0, n.lsn),
            if n.is_primary { "yes" } else { "no" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"[
        {"node_id": 2, "node_name": "node_2", "node_host": "10.0.0.2", "node_port": 5432,
         "node_lsn": "0/3000060", "node_is_primary": false},
        {"node_id": 1, "node_name": "node_1", "node_host": "10.0.0.1", "node_port": 5432,
         "node_lsn": "0/3000060", "node_is_primary": true, "extra": 1}
    ]"#;

    #[test]
    fn parses_sorts_and_leaves_out_this_node() {
        let nodes = parse(TWO, 0).unwrap();
        assert_eq!(nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2]);
        assert!(nodes[0].is_primary);
        let others = parse(TWO, 2).unwrap();
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].host, "10.0.0.1");
        assert!(parse("[]", 1).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_cannot_be_a_group() {
        assert!(matches!(parse("{}", 0), Err(NodesError::Shape(_))));
        assert!(matches!(
            parse(r#"[{"node_id": 1}]"#, 0),
            Err(NodesError::Shape(_))
        ));
        let two_primaries = TWO.replace("false", "true");
        assert!(matches!(
            parse(&two_primaries, 0),
            Err(NodesError::TwoPrimaries(2, 1))
        ));
        let dup = TWO.replace("\"node_id\": 2", "\"node_id\": 1");
        assert!(matches!(parse(&dup, 0), Err(NodesError::Duplicate(1))));
        let bad_lsn = TWO.replace(
            "0/3000060\", \"node_is_primary\": false",
            "x\", \"node_is_primary\": false",
        );
        assert!(matches!(
            parse(&bad_lsn, 0),
            Err(NodesError::Lsn { id: 2, .. })
        ));
        let bad_port = TWO.replace(
            "5432,\n         \"node_lsn\": \"0/3000060\", \"node_is_primary\": false",
            "70000,\n         \"node_lsn\": \"0/3000060\", \"node_is_primary\": false",
        );
        assert!(matches!(
            parse(&bad_port, 0),
            Err(NodesError::Port { id: 2, .. })
        ));
    }

    #[test]
    fn the_table_has_upstreams_columns() {
        let t = table(&parse(TWO, 2).unwrap());
        assert_eq!(
            t,
            "  Name |  Node |     Host:Port |              TLI: LSN | Primary?\n\
             -------+-------+---------------+-   -------------------+---------\n\
             node_1 |     1 | 10.0.0.1:5432 |          0: 0/3000060 |      yes\n"
        );
        assert_eq!(
            table(&[]),
            "Name | Node | Host:Port |              TLI: LSN | Primary?\n\
             -+--+--+-   -------------------+---------\n"
        );
    }
}
