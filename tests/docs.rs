//! The README's configuration reference must match what the binary prints.

#[test]
fn readme_has_the_current_config_reference() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- config-reference:start -->\n")
        .expect("start marker")
        + 32;
    let end = readme
        .find("<!-- config-reference:end -->")
        .expect("end marker");
    let reference = quaver::config::reference_markdown();
    let body = reference
        .strip_prefix("# Configuration reference\n\n")
        .unwrap_or(&reference);
    assert_eq!(
        &readme[start..end],
        body,
        "README's configuration reference is stale: regenerate it with `quaver --print-config-reference`"
    );
}
