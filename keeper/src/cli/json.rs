//! Client-side JSON the way upstream prints it: keys in
//! insertion order, 4-space indentation, and `/` escaped as `\/`.

/// Pretty-print `value` in upstream's client-side layout.
pub fn pretty(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return "null".into();
    }
    // A '/' only ever appears inside strings in JSON text.
    String::from_utf8_lossy(&out).replace('/', "\\/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_keep_their_order_and_slashes_are_escaped() {
        let v = serde_json::json!({"node_id": 1, "Minimum Recovery Ending LSN": "0/50618C8", "a": true});
        assert_eq!(
            super::pretty(&v),
            "{\n    \"node_id\": 1,\n    \"Minimum Recovery Ending LSN\": \"0\\/50618C8\",\n    \"a\": true\n}"
        );
    }
}
