// Seed 003 live, for a projector: the song's map (every analysed chunk, coloured by its
// time) with the trail of the chunks just heard, drawn by ml.chunkmap; here each new
// chunk sends a ring out from its place and the whole map breathes with the beat.
uniform sampler2D map;    // ml.chunkmap's picture
uniform vec2 position;    // the newest chunk's place, about -1..1
uniform float chunk;      // 1 when a chunk ends, fading
uniform float beat;       // 1 on a beat, fading
uniform vec2 map_size;

// The frame's uv to the image's, filling the frame with the image, aspect kept (the
// overflow is cropped): a square image on a 16:9 screen loses its top and bottom.
vec2 cover(vec2 uv, vec2 size) {
    float frame = iResolution.x / iResolution.y;
    float pic = size.y > 0.0 ? size.x / size.y : frame;
    vec2 s = frame > pic ? vec2(1.0, pic / frame) : vec2(frame / pic, 1.0);
    return (uv - 0.5) * s + 0.5;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = cover(fragCoord / iResolution.xy, map_size);
    vec3 col = texture(map, uv).rgb * (0.7 + 0.8 * beat);
    // The ring, in the picture's own frame (the map is spread over it, margins kept).
    vec2 at = vec2(0.06 + 0.88 * (position.x + 1.0) * 0.5, 0.09 + 0.82 * (position.y + 1.0) * 0.5);
    vec2 d = (uv - at) * vec2(map_size.y > 0.0 ? map_size.x / map_size.y : 1.0, 1.0);
    float r = length(d);
    // The neighbourhood of the new chunk (the chunks it sounds like) lights up with it.
    col *= 1.0 + chunk * (0.25 + 1.2 * exp(-r * r * 25.0));
    float radius = 0.02 + 0.18 * (1.0 - chunk);
    col += vec3(1.0, 0.95, 0.85) * smoothstep(0.01, 0.0, abs(r - radius)) * chunk * 0.9;
    col += vec3(1.0) * exp(-r * r * 900.0) * chunk;
    fragColor = vec4(col, 1.0);
}
