//! The result of a run: the JSON written to `--out` (`result.rs`), the SLO verdict that decides
//! the exit status (`slo.rs`) and the human summary on stdout (`print.rs`). The HTML report
//! with charts is [`crate::html`].

mod print;
mod result;
mod slo;

#[cfg(test)]
mod tests;

pub use print::print_summary;
pub use result::*;
pub use slo::{Slo, evaluate, tighten};
