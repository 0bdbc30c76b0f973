//! The sponsor console: the state and its update function, the keymap, the views, and the app
//! loop that runs effects in tasks.

mod alert;
pub mod app;
pub mod config;
pub mod keymap;
pub mod safe_text;
pub mod state;
pub mod theme;
pub mod view;
