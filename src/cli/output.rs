//! What the commands print on stdout: pretty JSON for scripts, aligned tables for people.

use serde::Serialize;

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<(), serde_json::Error> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
