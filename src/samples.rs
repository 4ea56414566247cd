//! Sample conversations bundled into the binary: `check` renders every destination against
//! each of them.

/// `(file name, JSON)` of each bundled sample (see `samples/`).
pub const SAMPLES: &[(&str, &str)] = &[
    ("chat.json", include_str!("../samples/chat.json")),
    (
        "chat-2015-format.json",
        include_str!("../samples/chat-2015-format.json"),
    ),
    ("missed.json", include_str!("../samples/missed.json")),
    ("offline.json", include_str!("../samples/offline.json")),
    ("anonymous.json", include_str!("../samples/anonymous.json")),
];
