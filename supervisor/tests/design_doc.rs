//! `actors-design.md` is the one design story and must list every message
//! an actor handles: this test reads every `impl Handler<M> for A` in the
//! daemon's sources and fails, naming them, when a message is missing from
//! the design document's "Messages" table.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `(actor, message)` for every handler outside test code. The ProgramActor's
/// fan-out handlers are made by a macro: its arms (`Start => process::Start`)
/// name the messages.
fn handlers(src: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut found = Vec::new();
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        // Test modules sit at the end of a file.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("impl Handler<")
                && let Some((message, rest)) = rest.split_once("> for ")
                && !message.starts_with('$')
            {
                let actor = rest.trim_end_matches(" {").trim().to_string();
                let message = message.rsplit("::").next().unwrap_or(message);
                found.push((actor, message.to_string()));
            }
            // `Start => process::Start, "starting", ...` in the fan-out macro.
            if let Some((message, rest)) = line.split_once(" => process::")
                && rest.contains(", \"")
                && message.chars().all(|c| c.is_ascii_alphanumeric())
            {
                found.push(("ProgramActor".into(), message.to_string()));
            }
        }
    }
    Ok(found)
}

/// The text of the design document's "Messages" section.
fn messages_section(doc: &str) -> &str {
    let start = doc.find("## Messages").unwrap_or(0);
    let rest = &doc[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

fn mentions(section: &str, word: &str) -> bool {
    section.match_indices(word).any(|(i, _)| {
        let before = section[..i].chars().next_back();
        let after = section[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

#[test]
fn every_handled_message_is_in_the_design_documents_message_table() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../actors-design.md"))?;
    let section = messages_section(&doc);
    let found = handlers(&root.join("src"))?;
    assert!(
        found.len() >= 20,
        "the handler scan found too little to be right: {found:?}"
    );
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, message)| !mentions(section, message))
        .map(|(actor, message)| format!("{message} (handled by {actor})"))
        .collect();
    assert!(
        missing.is_empty(),
        "actors-design.md's Messages table does not list: {}",
        missing.join(", ")
    );
    Ok(())
}
