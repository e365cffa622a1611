//! What `pg_autoctl watch` draws, as plain text lines cut to the terminal
//! size: a title line, the nodes (state, health, replication lag behind
//! the primary, as the monitor last heard), the last events that fit, and a
//! status line.

use crate::cli::api::NodeRow;
use crate::cli::show::events::Event;
use pgaf_fsm::Lsn;

/// Everything one frame shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub formation: String,
    pub monitor: String,
    /// When it was read, `HH:MM:SS`.
    pub at: String,
    pub nodes: Vec<NodeRow>,
    pub events: Vec<Event>,
    /// Shown on the last line (connection problems, how to quit).
    pub status: String,
}

/// Bytes as `pg_size_pretty` writes them.
pub fn pretty_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut unit = 0;
    // Postgres switches unit at 10240 of the smaller one, rounding half up.
    while v >= 10 * 1024 && unit < UNITS.len() - 1 {
        v = (v + 512) / 1024;
        unit += 1;
    }
    format!("{v} {}", UNITS[unit])
}

/// How far `node` is behind the primary, from the LSNs they last reported.
fn lag(node: &NodeRow, primary: Option<&NodeRow>) -> String {
    let Some(p) = primary else {
        return "-".into();
    };
    if p.node_id == node.node_id {
        return "-".into();
    }
    match (p.lsn.parse::<Lsn>(), node.lsn.parse::<Lsn>()) {
        (Ok(pl), Ok(nl)) if !nl.is_zero() => pretty_bytes(pl.0.saturating_sub(nl.0)),
        _ => "?".into(),
    }
}

fn health(h: i32) -> &'static str {
    match h {
        1 => "good",
        0 => "bad",
        _ => "unknown",
    }
}

/// `text` cut to `width` characters.
fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// Right-aligned columns joined by ` | `, the first header then a dashed
/// separator, like the other tables of pg_autoctl.
fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = vec![line(headers.to_vec())];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The lines of one frame for a `width` x `height` terminal: never more
/// than `height` lines, none longer than `width`.
pub fn render(s: &Snapshot, width: usize, height: usize) -> Vec<String> {
    let primary = s.nodes.iter().find(|n| n.is_writable_goal());
    let mut lines = vec![
        format!(
            "pg_autoctl watch: formation \"{}\" on {}, at {}",
            s.formation, s.monitor, s.at
        ),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.node_id.to_string(),
                n.host_port(),
                format!("{:>3}: {}", n.tli, n.lsn),
                lag(n, primary),
                n.reported
                    .parse::<pgaf_fsm::NodeState>()
                    .map_or("none", |st| st.connection_type())
                    .to_string(),
                health(n.health).to_string(),
                n.reported.clone(),
                n.assigned.clone(),
            ]
        })
        .collect();
    lines.extend(table(
        &[
            "Name",
            "Node",
            "Host:Port",
            "TLI: LSN",
            "Lag",
            "Connection",
            "Health",
            "Reported State",
            "Assigned State",
        ],
        &rows,
    ));
    if s.nodes.is_empty() {
        lines.push(format!("(no node in formation \"{}\")", s.formation));
    }
    lines.push(String::new());
    // The events that fit above the status line, the newest last.
    let room = height.saturating_sub(lines.len() + 4);
    let shown = &s.events[s.events.len().saturating_sub(room)..];
    let events: Vec<Vec<String>> = shown
        .iter()
        .map(|e| {
            vec![
                e.time.get(11..19).unwrap_or(&e.time).to_string(),
                format!("{}/{}", e.group_id, e.node_id),
                e.reported.clone(),
                e.goal.clone(),
            ]
        })
        .collect();
    let mut ev = table(
        &["Time", "Node", "Current State", "Assigned State"],
        &events,
    );
    // The comment goes last, as long as it is: the line is cut to the width.
    let comments = ["Comment".to_string(), "-".repeat(10)]
        .into_iter()
        .chain(shown.iter().map(|e| e.description.clone()));
    for (i, (line, c)) in ev.iter_mut().zip(comments).enumerate() {
        line.push_str(if i == 1 { "-+-" } else { " | " });
        line.push_str(&c);
    }
    lines.extend(ev);
    lines.truncate(height.saturating_sub(1));
    while lines.len() < height.saturating_sub(1) {
        lines.push(String::new());
    }
    lines.push(s.status.clone());
    lines.iter().map(|l| cut(l, width)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, name: &str, state: &str, lsn: &str) -> NodeRow {
        NodeRow {
            formation_kind: "pgsql".into(),
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 6000 + id as i32,
            group_id: 0,
            node_id: id,
            reported: state.into(),
            assigned: state.into(),
            candidate_priority: 50,
            replication_quorum: true,
            tli: 1,
            lsn: lsn.into(),
            health: 1,
        }
    }

    fn event(i: usize) -> Event {
        Event {
            time: format!("2026-11-22 10:50:{i:02}.533113+00"),
            group_id: 0,
            node_id: 1,
            reported: "primary".into(),
            goal: "primary".into(),
            description: format!("event number {i}"),
        }
    }

    #[test]
    fn sizes_as_postgres_prints_them() {
        assert_eq!(pretty_bytes(0), "0 bytes");
        assert_eq!(pretty_bytes(10239), "10239 bytes");
        assert_eq!(pretty_bytes(10240), "10 kB");
        assert_eq!(pretty_bytes(16 * 1024 * 1024), "16 MB");
    }

    #[test]
    fn a_frame_fits_the_terminal_and_keeps_the_newest_events() {
        let s = Snapshot {
            formation: "default".into(),
            monitor: "postgres://autoctl_node@127.0.0.1:6000/pg_auto_failover".into(),
            at: "10:50:11".into(),
            nodes: vec![
                node(1, "node1", "primary", "0/3000000"),
                node(2, "node2", "secondary", "0/2000000"),
            ],
            events: (0..30).map(event).collect(),
            status: "q: quit".into(),
        };
        let lines = render(&s, 80, 20);
        assert_eq!(lines.len(), 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
        assert!(lines[2].contains("Name") && lines[2].contains("Lag"));
        assert!(
            lines[5].contains("node2") && lines[5].contains("16 MB"),
            "{}",
            lines[5]
        );
        let text = lines.join("\n");
        assert!(text.contains("event number 29"), "{text}");
        assert!(!text.contains("event number 10 "), "{text}");
        assert_eq!(lines[19], "q: quit");
    }
}
