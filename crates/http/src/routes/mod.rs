//! Handlers, one module per resource. Handlers are thin: extract checked values, call the
//! cell, map the result to wire types.

pub mod access;
pub mod activity;
pub mod auth;
pub mod contacts;
pub mod conversations;
pub mod datamap;
pub mod datarequests;
pub mod events;
pub mod messenger;
pub mod operator;
pub mod passkeys;
pub mod retention;
pub mod reviews;
pub mod staff;
pub mod staff_passkeys;
pub mod subprocessors;
pub mod system;
pub mod teammates;
pub mod webhooks;
pub mod workspace;
