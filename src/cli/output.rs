//! What the commands print on stdout: pretty JSON for scripts, aligned tables for people.

use serde::Serialize;

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<(), serde_json::Error> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `rows` (the first is the header) in columns two spaces apart.
pub(crate) fn print_table(rows: &[Vec<String>]) {
    for line in table(rows) {
        println!("{line}");
    }
}

/// Each cell padded to its column's widest (in chars), trailing spaces trimmed.
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}", w = *w))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters_and_lines_end_without_spaces() {
        let rows = vec![
            vec!["ID".to_owned(), "NAME".to_owned(), "LEFT".to_owned()],
            vec!["1".to_owned(), "bjørn-bot".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&rows),
            vec!["ID  NAME       LEFT".to_owned(), "1   bjørn-bot".to_owned()]
        );
    }
}
