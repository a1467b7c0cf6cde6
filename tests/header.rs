//! The committed C header must be exactly what cbindgen generates from the current source,
//! passed through `portable_c` (cbindgen's output is C99/C++ only), and it must compile
//! cleanly as C89, C99, C11 and C++11.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What cbindgen writes that C89 `-Wpedantic` refuses, rewritten: `//` comments after
/// preprocessor directives and braces become `/* */`, and the comma after the last
/// enumerator goes. And the trailer (the init macros), which cbindgen writes after the
/// include guard, moves inside it.
fn portable_c(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for line in header.lines() {
        let code_line = line.starts_with('#') || line.starts_with('}');
        match line.find("//").filter(|_| code_line) {
            Some(at) => {
                let (code, comment) = line.split_at(at);
                let comment = comment.trim_start_matches('/').trim();
                out.push_str(&format!("{} /* {comment} */", code.trim_end()));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    // Enumerators are indented two spaces; `};` at column 0 closes an enum or a struct, and
    // only an enum's last line ends with a comma.
    let out = out.replace(",\n};\n", "\n};\n");
    match out.split_once(GUARD_END) {
        Some((body, trailer)) if !trailer.trim().is_empty() => {
            format!("{body}{}\n\n{GUARD_END}", trailer.trim())
        }
        _ => out,
    }
}

const GUARD_END: &str = "#endif  /* KVS_VIEWER_H */\n";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    let mut raw = Vec::new();
    cbindgen::Builder::new()
        .with_src(root().join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse src/")
        .write(&mut raw);
    portable_c(&String::from_utf8(raw).expect("cbindgen wrote UTF-8"))
}

#[test]
fn committed_header_is_fresh() {
    let fresh = generate();
    let path = root().join("include/kvs_viewer.h");
    if std::env::var_os("KVS_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("writing include/kvs_viewer.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/kvs_viewer.h is stale: regenerate it with \
         `KVS_UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}

#[test]
fn header_version_macros_match_the_package() {
    let header = include_str!("../include/kvs_viewer.h");
    for (name, value) in [
        ("KVS_VIEWER_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("KVS_VIEWER_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("KVS_VIEWER_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {value}\n");
        assert!(header.contains(&line), "header lacks {line:?}");
    }
}

#[test]
fn portable_c_rewrites_only_what_c89_refuses() {
    let raw = "#endif // __cplusplus\n}  // extern \"C\"\n * see https://x/y\nenum E {\n  A = 0,\n  B = 1,\n};\n";
    assert_eq!(
        portable_c(raw),
        "#endif /* __cplusplus */\n} /* extern \"C\" */\n * see https://x/y\nenum E {\n  A = 0,\n  B = 1\n};\n"
    );
    let guarded = "#define KVS_VIEWER_H\nint f(void);\n#endif  /* KVS_VIEWER_H */\n\n#define M 1\n";
    assert_eq!(
        portable_c(guarded),
        "#define KVS_VIEWER_H\nint f(void);\n#define M 1\n\n#endif  /* KVS_VIEWER_H */\n"
    );
}

/// Compiles `source` against the committed header with the system compiler (syntax and
/// semantics only, no link), warnings as errors.
fn compile(compiler: &str, std: &str, source: &Path) {
    let out = std::env::temp_dir().join(format!("kvs-header-{}-{std}.o", std::process::id()));
    let result = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler} (install gcc/g++): {e}"));
    let _ = std::fs::remove_file(&out);
    assert!(
        result.status.success(),
        "{compiler} -std={std} {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
}

fn c_source(name: &str) -> PathBuf {
    root().join("tests/c").join(name)
}

#[test]
fn header_compiles_as_c89_c99_c11() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for std in ["c89", "c99", "c11"] {
        compile(&cc, std, &c_source("header_c.c"));
    }
}

#[test]
fn header_compiles_as_cxx11() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    compile(&cxx, "c++11", &c_source("header_cxx.cpp"));
}
