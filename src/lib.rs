//! Bica: scheduled, encrypted PostgreSQL backups built from small binaries that talk through
//! pipes.
//!
//! Each binary (`bica-dump`, `bica-pack`, `bica-seal`, `bica-prune`, `bica-state`, `bica-config`,
//! `bica-remote`, `bica-restore`, `bica-dbprops`, `bica-compare`) is a thin `main` in `bins/` that
//! hands its clap definition and its `run` function to [`cli::main`]. Everything else lives
//! here so that tests and the man-page generator see exactly what the binaries see.

pub mod archive;
pub mod cli;
pub mod clients;
pub mod compare;
pub mod config;
pub mod dbprops;
pub mod dump;
pub mod io;
pub mod pack;
pub mod prune;
pub mod remote;
pub mod restore;
pub mod seal;
pub mod sqltext;
pub mod stages;
pub mod state;
