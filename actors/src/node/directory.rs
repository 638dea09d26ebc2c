//! The node's directory: `match_id -> entry` for every live match here,
//! readable from any thread without messaging the registry.

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;

use matchd_protocol::MatchId;

use crate::session::messages::MatchInfo;
use crate::session::MatchSession;

/// A directory entry: the match's address and its shared info.
#[derive(Clone)]
pub struct MatchEntry {
    pub addr: Addr<MatchSession>,
    pub info: Arc<MatchInfo>,
}

/// `match_id -> entry`, readable from any thread. Never hold a `Ref` into it
/// across another call on the map (dashmap may deadlock): clone out.
pub type Directory = Arc<DashMap<MatchId, MatchEntry>>;
