-- +goose Up
-- Location near: the position of a Location (decimal degrees). Searches
-- take a bounding box from the index, then the distance.
CREATE TABLE idx_position (
    tenant text             NOT NULL,
    type   text             NOT NULL,
    id     text             NOT NULL,
    param  text             NOT NULL,
    lat    double precision NOT NULL,
    lon    double precision NOT NULL
);
CREATE INDEX idx_position_res ON idx_position (tenant, type, id, param);
CREATE INDEX idx_position_lat ON idx_position (tenant, type, param, lat, lon, id);

-- +goose Down
DROP TABLE idx_position;
