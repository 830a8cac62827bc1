//! The item tree: folders and files under one root folder (`/`, aliases `top`, `home`, `root`).
//!
//! Names are unique among siblings, compared case-insensitively as ShareFile does. Ids look like
//! ShareFile's (`fo…` folders, `fi…` files). A file keeps its bytes and their MD5 (`Hash`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::names::{md5_hex, next_free_name, validate_name};

pub const ROOT_ALIASES: [&str; 3] = ["top", "home", "root"];

#[derive(Debug, Clone)]
pub enum Kind {
    Folder { description: String },
    File { content: Vec<u8>, hash: String },
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub created: DateTime<Utc>,
    pub kind: Kind,
}

impl Item {
    pub fn is_folder(&self) -> bool {
        matches!(self.kind, Kind::Folder { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("Item {0} not found")]
    NotFound(String),
    #[error("Item {0} is not a folder")]
    NotAFolder(String),
    #[error("An item named {0:?} already exists in this folder")]
    Exists(String),
    #[error("Invalid name {0:?}")]
    InvalidName(String),
}

/// Where a stored file ended up.
#[derive(Debug, Clone)]
pub struct Stored {
    pub item: Item,
    pub path: String,
    /// The name existed and `Overwrite` was false: stored as `name (1).ext`.
    pub renamed: bool,
    /// The name existed and `Overwrite` was true: the old file was replaced.
    pub replaced: bool,
}

fn new_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    format!("{prefix}{}", &uuid[2..])
}

#[derive(Debug)]
pub struct Store {
    root: String,
    items: HashMap<String, Item>,
    /// Children in creation order.
    children: HashMap<String, Vec<String>>,
}

impl Default for Store {
    fn default() -> Self {
        let root = Item {
            id: new_id("fo"),
            name: String::new(),
            parent: None,
            created: Utc::now(),
            kind: Kind::Folder {
                description: String::new(),
            },
        };
        let id = root.id.clone();
        Self {
            root: id.clone(),
            items: HashMap::from([(id.clone(), root)]),
            children: HashMap::from([(id, Vec::new())]),
        }
    }
}

impl Store {
    pub fn root_id(&self) -> &str {
        &self.root
    }

    /// An item by id or root alias.
    pub fn get(&self, id: &str) -> Option<&Item> {
        if ROOT_ALIASES.iter().any(|a| a.eq_ignore_ascii_case(id)) {
            return self.items.get(&self.root);
        }
        self.items.get(id)
    }

    pub fn children(&self, id: &str) -> Vec<&Item> {
        self.children
            .get(id)
            .map(|ids| ids.iter().filter_map(|c| self.items.get(c)).collect())
            .unwrap_or_default()
    }

    pub fn child_named(&self, parent: &str, name: &str) -> Option<&Item> {
        self.children(parent)
            .into_iter()
            .find(|c| c.name.to_lowercase() == name.to_lowercase())
    }

    /// `/Clients/Acme` → the item; `/` is the root.
    pub fn by_path(&self, path: &str) -> Option<&Item> {
        let mut item = self.items.get(&self.root)?;
        for name in path.split('/').filter(|s| !s.is_empty()) {
            item = self.child_named(&item.id, name)?;
        }
        Some(item)
    }

    /// The absolute path of an item (`/` for the root).
    pub fn path_of(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut at = self.items.get(id);
        while let Some(item) = at.filter(|i| i.parent.is_some()) {
            names.push(item.name.as_str());
            at = item.parent.as_deref().and_then(|p| self.items.get(p));
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// Total bytes below a folder, or a file's size.
    pub fn size_of(&self, id: &str) -> u64 {
        match self.items.get(id).map(|i| &i.kind) {
            Some(Kind::File { content, .. }) => content.len() as u64,
            Some(Kind::Folder { .. }) => self.children[id].iter().map(|c| self.size_of(c)).sum(),
            None => 0,
        }
    }

    pub fn used_bytes(&self) -> u64 {
        self.size_of(&self.root)
    }

    pub fn files(&self) -> impl Iterator<Item = &Item> {
        self.items.values().filter(|i| !i.is_folder())
    }

    fn folder(&self, id: &str) -> Result<&Item, StoreError> {
        let item = self
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if item.is_folder() {
            Ok(item)
        } else {
            Err(StoreError::NotAFolder(id.to_owned()))
        }
    }

    fn insert(&mut self, item: Item) -> Item {
        let parent = item.parent.clone().expect("only the root has no parent");
        self.children
            .entry(parent)
            .or_default()
            .push(item.id.clone());
        if item.is_folder() {
            self.children.insert(item.id.clone(), Vec::new());
        }
        self.items.insert(item.id.clone(), item.clone());
        item
    }

    pub fn create_folder(
        &mut self,
        parent: &str,
        name: &str,
        description: &str,
    ) -> Result<Item, StoreError> {
        validate_name(name)?;
        let parent = self.folder(parent)?.id.clone();
        if self.child_named(&parent, name).is_some() {
            return Err(StoreError::Exists(name.to_owned()));
        }
        Ok(self.insert(Item {
            id: new_id("fo"),
            name: name.to_owned(),
            parent: Some(parent),
            created: Utc::now(),
            kind: Kind::Folder {
                description: description.to_owned(),
            },
        }))
    }

    /// Creates the folders of `path` that are missing (`mkdir -p`); returns the last one.
    pub fn ensure_path(&mut self, path: &str) -> Result<Item, StoreError> {
        let mut at = self.root.clone();
        for name in path.split('/').filter(|s| !s.is_empty()) {
            at = match self.child_named(&at, name) {
                Some(existing) if existing.is_folder() => existing.id.clone(),
                Some(_) => return Err(StoreError::NotAFolder(name.to_owned())),
                None => self.create_folder(&at, name, "")?.id,
            };
        }
        Ok(self.items[&at].clone())
    }

    /// Stores a file in a folder (see [`Stored`] for what happens to an existing name).
    pub fn store_file(
        &mut self,
        folder: &str,
        name: &str,
        content: Vec<u8>,
        overwrite: bool,
    ) -> Result<Stored, StoreError> {
        validate_name(name)?;
        let folder = self.folder(folder)?.id.clone();
        let existing = self
            .child_named(&folder, name)
            .map(|i| (i.id.clone(), i.is_folder()));
        let (mut name, mut renamed, mut replaced) = (name.to_owned(), false, false);
        match existing {
            Some((id, false)) if overwrite => {
                self.items.remove(&id);
                self.children
                    .entry(folder.clone())
                    .or_default()
                    .retain(|c| *c != id);
                replaced = true;
            }
            Some(_) => {
                name = next_free_name(&name, |n| self.child_named(&folder, n).is_some());
                renamed = true;
            }
            None => {}
        }
        let hash = md5_hex(&content);
        let item = self.insert(Item {
            id: new_id("fi"),
            name,
            parent: Some(folder),
            created: Utc::now(),
            kind: Kind::File { content, hash },
        });
        let path = self.path_of(&item.id);
        Ok(Stored {
            item,
            path,
            renamed,
            replaced,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_conflicts_and_duplicate_names() {
        let mut store = Store::default();
        let acme = store.ensure_path("/Clients/Acme").unwrap();
        assert_eq!(store.by_path("/clients/ACME/").unwrap().id, acme.id);
        assert_eq!(store.path_of(&acme.id), "/Clients/Acme");
        assert_eq!(store.get("top").unwrap().id, store.root_id());
        assert_eq!(
            store.create_folder(&acme.id, "x/y", "").unwrap_err(),
            StoreError::InvalidName("x/y".into())
        );
        let clients = store.by_path("/Clients").unwrap().id.clone();
        assert!(matches!(
            store.create_folder(&clients, "acme", ""),
            Err(StoreError::Exists(_))
        ));
        let first = store
            .store_file(&acme.id, "a.pdf", b"one".to_vec(), false)
            .unwrap();
        let second = store
            .store_file(&acme.id, "A.pdf", b"two".to_vec(), false)
            .unwrap();
        assert_eq!(
            (second.path.as_str(), second.renamed),
            ("/Clients/Acme/A (1).pdf", true)
        );
        let third = store
            .store_file(&acme.id, "a.pdf", b"three".to_vec(), true)
            .unwrap();
        assert!(third.replaced && store.get(&first.item.id).is_none());
        assert_eq!(store.used_bytes(), 8);
        assert_eq!(store.children(&acme.id).len(), 2);
    }
}
