//! The one way the CLI builds its tables: no borders, no wrapping (a report that is
//! piped or pasted keeps its columns), numbers aligned right.

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
