//! The man pages in man/ are generated from the same clap definitions the binaries parse, plus
//! each tool's `DOC` (exit status, examples, see also). This test fails when a page is stale;
//! `BICA_BLESS=1 cargo test --test man` rewrites them.

use std::path::Path;

use bica::cli::ManDoc;
use clap::CommandFactory;
use roff::{bold, roman, Roff};

fn render(cmd: clap::Command, doc: &ManDoc) -> String {
    let man =
        clap_mangen::Man::new(cmd.clone()).source(format!("bica {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();

    let mut roff = Roff::new();
    if cmd.has_subcommands() {
        roff.control("SH", ["COMMANDS"]);
        render_subcommands(&mut roff, &cmd, cmd.get_name());
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in doc.exit_status {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(*meaning)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in doc.examples {
        roff.control("PP", []).text([roman(*what)]);
        roff.control("PP", [])
            .control("RS", ["4"])
            .control("nf", []);
        for line in command.lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []).control("RE", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(doc.see_also.join(", "))]);
    out.extend(roff.render().into_bytes());
    man.render_version_section(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Every leaf subcommand with its usage, description and options (clap_mangen renders the
/// top level only).
fn render_subcommands(roff: &mut Roff, cmd: &clap::Command, prefix: &str) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix} {}", sub.get_name());
        if sub.has_subcommands() {
            render_subcommands(roff, sub, &name);
            continue;
        }
        roff.control("SS", [name.as_str()]);
        let usage = sub
            .clone()
            .bin_name(&name)
            .render_usage()
            .to_string()
            .replace("Usage: ", "");
        roff.control("PP", []).text([bold(usage)]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            roff.control("PP", []).text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if long == "help" {
                continue;
            }
            let mut flag = format!("--{long}");
            if arg.get_action().takes_values() {
                let value = arg
                    .get_value_names()
                    .and_then(|v| v.first().map(|n| n.to_string()))
                    .unwrap_or_else(|| "VALUE".into());
                flag.push_str(&format!(" {value}"));
            }
            let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let possible: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            if !possible.is_empty() && arg.get_action().takes_values() {
                help.push_str(&format!(" [possible values: {}]", possible.join(", ")));
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.is_empty())
                .collect();
            if !defaults.is_empty() {
                help.push_str(&format!(" [default: {}]", defaults.join(", ")));
            }
            roff.control("TP", [])
                .text([bold(flag)])
                .text([roman(help)]);
        }
    }
}

fn check(name: &str, cmd: clap::Command, doc: &ManDoc) {
    let page = render(cmd, doc);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(format!("{name}.1"));
    if std::env::var_os("BICA_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == page,
        "{} is stale: regenerate with `BICA_BLESS=1 cargo test --test man`",
        path.display()
    );
    // Every page documents its exit codes and examples.
    assert!(page.contains("EXIT STATUS") && page.contains("EXAMPLES"));
}

#[test]
fn man_pages_are_current() {
    check("bica-dump", bica::dump::Cli::command(), &bica::dump::DOC);
    check("bica-pack", bica::pack::Cli::command(), &bica::pack::DOC);
    check("bica-seal", bica::seal::Cli::command(), &bica::seal::DOC);
    check("bica-prune", bica::prune::Cli::command(), &bica::prune::DOC);
    check("bica-state", bica::state::Cli::command(), &bica::state::DOC);
    check(
        "bica-compare",
        bica::compare::Cli::command(),
        &bica::compare::DOC,
    );
    check(
        "bica-dbprops",
        bica::dbprops::Cli::command(),
        &bica::dbprops::DOC,
    );
    check(
        "bica-remote",
        bica::remote::Cli::command(),
        &bica::remote::DOC,
    );
    check(
        "bica-restore",
        bica::restore::Cli::command(),
        &bica::restore::DOC,
    );
    check(
        "bica-config",
        bica::config::Cli::command(),
        &bica::config::DOC,
    );
}
