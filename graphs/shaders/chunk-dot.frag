// Seed 003 live: each new chunk lights a dot at its place in the song's map; the map's
// earlier dots fade slowly (feedback through 'prev'), so the music draws its own shape.
uniform sampler2D prev;   // this shader's previous frame
uniform vec2 position;    // the last chunk's place in the 2-D map, about -1..1
uniform float chunk;      // 1 when a chunk ends, fading

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    vec2 c = position * vec2(0.9 * iResolution.x / iResolution.y, 0.9);
    vec3 old = max(texture(prev, uv).rgb * 0.985 - 0.5 / 255.0, 0.0);
    float d = length(p - c);
    vec3 colour = 0.5 + 0.5 * cos(6.28318 * (iTime * 0.02 + vec3(0.0, 0.33, 0.67)));
    vec3 dot = colour * smoothstep(0.05, 0.0, d) * chunk;
    fragColor = vec4(max(old, dot), 1.0);
}
