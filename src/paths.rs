//! Container paths as clients write them (a leaf helper).

/// `path` made absolute and clean, as Go's `path.Clean("/" + path)`: no
/// doubled or trailing slashes, no "." and no "..", which stops at "/".
pub fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_as_go_does() {
        assert_eq!(clean_absolute("/tmp//x/./y/"), "/tmp/x/y");
        assert_eq!(clean_absolute("a/../../b"), "/b");
        assert_eq!(clean_absolute(""), "/");
        assert_eq!(clean_absolute("/.."), "/");
    }
}
