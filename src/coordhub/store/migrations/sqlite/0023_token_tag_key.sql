-- The key that tags the tokens this database's hubs mint (core/tokens.py): a token whose tag checks is looked
-- up even while its client's address is out of failed sign-ins (review: a flood of bad tokens from an agents'
-- machine locked out every token from there, the admin's `coord halt` included). 32 random bytes, hex.
INSERT INTO hub_meta (key, value) VALUES ('token_tag_key', lower(hex(randomblob(32))))
    ON CONFLICT (key) DO NOTHING;
