//! Process groups as /proc shows them: which hold a live process, in one pass. The child's
//! ladder and the guardian both ask.

/// The process groups that hold a live (non-zombie) process of `session` (of any, when
/// `None`), from one pass over /proc.
pub(crate) fn live_groups_of(session: Option<i32>) -> std::collections::HashSet<u32> {
    let mut groups = std::collections::HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return groups };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = after.split_ascii_whitespace();
        let (Some(state), Some(_ppid), Some(pgrp), Some(sid)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let in_session = session.is_none_or(|want| sid.parse() == Ok(want));
        if state != "Z" && state != "X" && in_session {
            if let Ok(pgrp) = pgrp.parse() {
                groups.insert(pgrp);
            }
        }
    }
    groups
}
