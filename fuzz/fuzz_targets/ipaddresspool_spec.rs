//! `IPAddressPool` specs as the API server hands them over (JSON), read by
//! `PoolDeclaration::from_resource` and merged into the pool view. An input is one spec, or a
//! JSON array of specs (pools created one second apart, so overlaps and clashes are decided).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimlb_api::IPAddressPoolSpec;
use swimlb_controller::config::PoolDeclaration;

fuzz_target!(|data: &[u8]| {
    let Some(specs) = swimlb_fuzz::one_or_many::<IPAddressPoolSpec>(data) else {
        return;
    };
    let mut declarations = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let json = serde_json::to_vec(spec).expect("a spec serializes");
        let again: IPAddressPoolSpec = serde_json::from_slice(&json).expect("and reads back");
        assert_eq!(&again, spec);
        let name = format!("pool-{}", i % 3);
        declarations.push(PoolDeclaration::from_resource(
            "swimlb-system",
            &name,
            i as i64,
            spec,
        ));
    }
    swimlb_fuzz::pools::check_pool_set(declarations);
});
