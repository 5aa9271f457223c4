//! Where each key of a restore goes: the target's masters and, for every slot, the master that
//! owns it (any number of masters: the backup's shape does not matter).

use crate::client::Client;
use crate::serving::Master;
use crate::slots::{self, key_slot};

/// The target's masters and its slot map.
pub struct Route {
    /// A connection to each master.
    pub masters: Vec<Client>,
    owner: Vec<u16>,
}

impl Route {
    /// The route over these masters (from [`crate::serving::masters`]) and their connections.
    pub fn new(masters: &[Master], clients: &[Client]) -> Route {
        let mut owner = vec![0u16; slots::SLOTS as usize];
        for (i, m) in masters.iter().enumerate() {
            for range in &m.slots {
                for slot in range.clone() {
                    owner[slot as usize] = i as u16;
                }
            }
        }
        Route {
            masters: masters.iter().map(|m| clients[m.index].clone()).collect(),
            owner,
        }
    }

    /// The master (its position in [`Route::masters`]) that owns `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        self.owner[slot as usize] as usize
    }

    /// The master that owns `key`.
    pub fn owner_of(&self, key: &[u8]) -> usize {
        self.owner(key_slot(key))
    }
}
