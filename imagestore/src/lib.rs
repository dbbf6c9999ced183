//! berth's image store (being written).
