//! Load harness; see README.md in this folder.
