//! A bound on how deeply configuration YAML may nest, checked before parsing.
//!
//! The YAML parser takes seconds on deeply nested input (100,000 `[`), and every
//! reload would wait behind it. No real configuration nests deeper than a dozen
//! levels, so deeper input is refused at once, by a linear scan.

/// The deepest nesting accepted: block indentation levels, `- ` entries and flow
/// brackets counted together.
pub const MAX_DEPTH: usize = 64;

/// Refuses `text` when it nests deeper than [`MAX_DEPTH`].
///
/// Deliberately blunt, so that nothing can hide nesting from it: every `[` and
/// `{` counts, inside quotes and comments too (a real configuration has few), and
/// every YAML line break splits lines (`\r`, U+0085, U+2028 and U+2029 as well).
pub fn check_depth(text: &str) -> Result<(), String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let lines = text.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']);
    for (n, line) in lines.enumerate() {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if flow == 0 && indent < bytes.len() && bytes[indent] != b'#' {
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            // `- - x` nests one level per dash.
            let mut i = indent;
            let mut dashes = 0;
            while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ') | None) {
                dashes += 1;
                i += 2;
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            too_deep(indents.len() + dashes, n)?;
        }
        for b in bytes {
            match b {
                b'[' | b'{' => {
                    flow += 1;
                    too_deep(indents.len() + flow, n)?;
                }
                b']' | b'}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

fn too_deep(depth: usize, line: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "nesting deeper than {MAX_DEPTH} levels at line {}; a configuration never needs that much",
            line + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_configurations_pass() {
        let text = "vhosts:\n  - name: a\n    hosts: [a.test, \"*.a.test\"]\n    security:\n      csp_policy: {script-src: [\"'self'\", \"'self'\"]}\n      # see [1]\n    headers: {set: {Report-To: '{\"group\": [\"x\"]}'}}\n";
        assert_eq!(check_depth(text), Ok(()));
    }

    #[test]
    fn deep_flow_block_and_dash_nesting_are_refused_fast() {
        let flow = "a: ".to_string() + &"[".repeat(100_000);
        assert!(check_depth(&flow).unwrap_err().contains("deeper than 64"));

        let block: String = (0..70)
            .map(|d| format!("{}k{d}:\n", " ".repeat(d)))
            .collect();
        assert!(check_depth(&block).unwrap_err().contains("at line 65"));

        let dashes = "- ".repeat(70) + "x";
        assert!(check_depth(&dashes).is_err());
        assert_eq!(check_depth(&("- ".repeat(60) + "x")), Ok(()));
    }

    #[test]
    fn quotes_comments_and_odd_line_breaks_hide_nothing() {
        let deep = "[".repeat(100);
        for text in [
            format!("a: it's {deep}"),
            format!("note: a,'\nc: {deep}"),
            format!("a: b\t# ,'\nc: {deep}"),
            format!("#\ra: {deep}"),
            format!("#\u{2028}a: {deep}"),
            format!("a: '{deep}'"),
        ] {
            assert!(check_depth(&text).is_err(), "{text:?}");
        }
    }
}
