-- Refresh tokens become sealed: the token itself carries its claims, encrypted and
-- authenticated with a platform key, so issuing one writes nothing. What the store keeps is
-- what rotation and revocation need: the tokens already redeemed (a second redemption is a
-- reuse and ends the family) and the revoked families.
DROP TABLE refresh_tokens;
CREATE TABLE refresh_used (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE refresh_revoked (
    family TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
