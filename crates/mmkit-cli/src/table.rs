//! The one way the CLI builds its tables: no borders, no wrapping (a report that is
//! piped or pasted keeps its columns), numbers aligned right; and the one printer of the
//! `stats` commands, a table for people or a line of JSON.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

/// A borderless, unwrapped table; with `header` as its first row unless it is empty.
pub(crate) fn plain_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        table.set_header(header.iter().map(Cell::new));
    }
    table
}

/// Align the given columns to the right (columns past the table's width are ignored).
pub(crate) fn align_right(table: &mut Table, columns: impl IntoIterator<Item = usize>) {
    for i in columns {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// One row of a `stats` report: the label the table shows, the field of the report it
/// shows (its name in the JSON), and the value as people read it (`4 KiB`).
pub(crate) type StatRow<'a> = (&'a str, &'a str, String);

/// Print a `stats` report to stdout: with `json`, one line of JSON holding the fields
/// `rows` name, in that order, as serde writes them from `report` (numbers of bytes, not
/// sizes); else a borderless two-column table of `rows`' labels and texts.
pub(crate) fn print_stats(
    json: bool,
    report: &impl serde::Serialize,
    rows: &[StatRow<'_>],
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let all = serde_json::to_value(report)?;
        let fields: Vec<String> = rows
            .iter()
            .map(|(_, key, _)| Ok(format!("{}:{}", serde_json::to_string(key)?, all[key])))
            .collect::<serde_json::Result<_>>()?;
        writeln!(out, "{{{}}}", fields.join(","))?;
    } else {
        let mut table = plain_table(&[]);
        for (label, _, text) in rows {
            table.add_row(vec![
                Cell::new(label),
                Cell::new(text).set_alignment(CellAlignment::Right),
            ]);
        }
        writeln!(out, "{table}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
