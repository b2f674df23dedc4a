//! A bound on how deeply configuration YAML may nest, checked before parsing.
//!
//! The YAML parser takes seconds on deeply nested input (100,000 `[`), and every
//! reload would wait behind it. No real configuration nests deeper than a dozen
//! levels, so deeper input is refused at once, by a linear scan.

/// The deepest nesting accepted: block indentation levels, `- ` entries and flow
/// brackets counted together.
pub const MAX_DEPTH: usize = 64;

/// Refuses `text` when it nests deeper than [`MAX_DEPTH`]. Brackets inside quoted
/// scalars do not count; a quote only opens a scalar where YAML allows one, so a
/// stray `'` cannot hide the brackets after it.
pub fn check_depth(text: &str) -> Result<(), String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        if quote.is_none() && flow == 0 {
            let indent = bytes.iter().take_while(|b| **b == b' ').count();
            let rest = &line[indent..];
            if rest.is_empty() || rest.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            // `- - x` nests one level per dash.
            let mut dashes = 0;
            i = indent;
            while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ') | None) {
                dashes += 1;
                i += 2;
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            too_deep(indents.len() + dashes, n)?;
        }
        let base = indents.len();
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(b'\'') if b == b'\'' => {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        quote = None;
                    }
                }
                Some(b'"') if b == b'\\' => i += 1,
                Some(b'"') if b == b'"' => quote = None,
                Some(_) => {}
                None => match b {
                    b'#' if i == 0 || bytes[i - 1] == b' ' => break,
                    b'\'' | b'"' if opens_scalar(bytes, i) => quote = Some(b),
                    b'[' | b'{' => {
                        flow += 1;
                        too_deep(base + flow, n)?;
                    }
                    b']' | b'}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
    }
    Ok(())
}

/// A quote starts a quoted scalar only at the start of a value.
fn opens_scalar(bytes: &[u8], i: usize) -> bool {
    let before = bytes[..i].iter().rev().find(|b| **b != b' ');
    matches!(before, None | Some(b'[' | b'{' | b',' | b':' | b'-' | b'?'))
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
        let text = "vhosts:\n  - name: a\n    hosts: [a.test, \"*.a.test\"]\n    security:\n      csp_policy: {script-src: [\"'self'\", \"'nonce-[x'\"]}\n      # a [[[[ comment\n    headers: {set: {Report-To: '{\"group\": [\"x\"]}'}}\n";
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
    fn a_stray_quote_does_not_hide_brackets() {
        let text = "a: it's ".to_string() + &"[".repeat(100);
        assert!(check_depth(&text).is_err());
        let quoted = "a: '".to_string() + &"[".repeat(100) + "'";
        assert_eq!(check_depth(&quoted), Ok(()));
    }
}
