//! The README works as written: every `picardiff sample|compare|info` command in its `sh` code
//! blocks runs and succeeds, from a directory where `examples/` is the repository's (outputs land
//! in that temporary directory, not in the checkout). A changed option, a shipped file that moved
//! or a default that makes an example fail breaks this test. (`bench`, timing runs and GPU commands
//! are not run here; the pkg-config recipe is scripts/pkgconfig-example.sh, run by CI.)

mod cli_common;

use cli_common::*;

/// The `picardiff sample|compare|info` commands of README.md's sh blocks, continuation lines joined.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let (mut commands, mut in_sh, mut current) = (Vec::new(), false, String::new());
    for line in readme.lines().map(str::trim) {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh || (current.is_empty() && line.starts_with('#')) {
            continue;
        }
        let (text, more) = match line.strip_suffix('\\') {
            Some(t) => (t, true),
            None => (line, false),
        };
        current.push_str(text);
        current.push(' ');
        if !more {
            let words: Vec<String> = current.split_whitespace().map(String::from).collect();
            let runnable = ["sample", "compare", "info"];
            if words.first().is_some_and(|w| w == "picardiff")
                && words.get(1).is_some_and(|c| runnable.contains(&c.as_str()))
            {
                commands.push(words[1..].to_vec());
            }
            current.clear();
        }
    }
    commands
}

#[test]
fn every_readme_cli_example_runs_as_written() {
    let commands = readme_commands();
    // The Command line section's four examples and the Diffusion Policy section's three.
    assert!(commands.len() >= 7, "found only {commands:?}");
    let dir = TempDir::new("readme");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::os::unix::fs::symlink(&examples, dir.path("examples")).unwrap();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = picardiff(&args, &dir.0);
        assert!(
            out.status.success(),
            "README command `picardiff {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        for (i, a) in args.iter().enumerate() {
            if ["--out", "--stats"].contains(a) {
                let file = dir.path(args[i + 1]);
                assert!(
                    file.is_file(),
                    "`picardiff {}` wrote no {a}",
                    args.join(" ")
                );
            }
        }
    }
}

/// The README's Rust block is examples/readme_library.rs from its first `use` on, so the code the
/// README shows is the code `cargo test` compiles (and the example runs anywhere: no file paths).
#[test]
fn the_readme_library_example_is_the_compiled_example() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let block = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```\n").next())
        .expect("a rust block in README.md");
    let example = std::fs::read_to_string("examples/readme_library.rs").unwrap();
    let code = &example[example.find("use picardiff").unwrap()..];
    assert_eq!(
        block, code,
        "README.md's Rust block differs from examples/readme_library.rs"
    );
    assert!(
        !code.contains(".json"),
        "the example must not depend on the working directory"
    );
}
