// A tunnel flying on: rings flash on beats, the walls glow with loudness and bass and
// light up on every hit (onset), the more the louder the music.
uniform float level;    // loudness 0..1
uniform float bass;     // 0..1
uniform float beat;     // 1 on a beat, fading
uniform float onset;    // 1 on an onset, fading

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    float r = max(length(p), 1e-3);
    float a = atan(p.y, p.x);
    float z = 0.35 / r + iTime * 0.8;
    float rings = 0.5 + 0.5 * cos(z * 12.566);
    float spokes = 0.5 + 0.5 * cos(a * 6.0 + z * 2.0);
    vec3 wall = mix(vec3(0.05, 0.15, 0.55), vec3(0.95, 0.25, 0.55), rings);
    vec3 col = wall * (0.25 + 0.75 * rings * spokes) * (0.15 + 0.6 * level + 0.4 * bass + 0.9 * onset * (0.3 + 0.7 * level));
    col += beat * vec3(1.0, 0.85, 0.6) * pow(rings, 8.0);
    col *= smoothstep(0.0, 0.5, r);
    fragColor = vec4(col, 1.0);
}
