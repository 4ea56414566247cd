//! A hook body: the hook path's identity read and the worker's full parse agree (whatever
//! the hook accepts, the template context builds, with the same kind and visitor), and
//! neither panics.
#![no_main]

use deskbridge::smartsupp::{self, Identity, Stored, MAX_ID_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let identity = Identity::read(body);
    let stored = Stored {
        key: "fuzz".into(),
        version: 1,
        received_at: 0,
    };
    let context = smartsupp::context(body, &stored);
    let Ok(identity) = identity else {
        return;
    };
    let context = match context {
        Ok(context) => context,
        Err(e) => panic!("the hook accepts {identity:?} but the full parse refuses: {e}"),
    };
    let meta = &context["meta"];
    assert_eq!(meta["kind"], identity.kind, "kind");
    let email = meta["email"].as_str().map(str::to_lowercase);
    assert_eq!(email, identity.email, "email");
    let name = smartsupp::non_empty(&context["visitor"]["name"]);
    assert_eq!(name, identity.name, "name");
    let (account, channel) = identity.key.split_once('-').expect("key has a dash");
    assert!(account.chars().count() <= MAX_ID_CHARS, "accountId length");
    assert!(
        channel.chars().count() <= MAX_ID_CHARS || account.contains('-'),
        "channel.id length"
    );
});
