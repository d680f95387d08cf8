//! The admin listener: the token, the audit's rows, filters, formats and pages, the decision
//! log and the metrics, over a real gateway in the gateway profile.

fn main() {}
