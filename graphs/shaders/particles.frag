// Particles on orbits (seed 002's particle preset): how fast they swirl, how large they
// are, how far they spread and their hue come from the autoencoder's code through the
// seed's mapping (min, max, step, FPS); they flare when the sound is novel.
uniform float swirl;     // orbit speed, in steps of 0.5
uniform float size;      // particle radius, in screen heights
uniform float hue;       // 0..1, changed at most once every 10 s
uniform float spread;    // 0..1, how far from the centre the orbits reach
uniform float novelty;   // 0..1: sounds the autoencoder finds new
uniform sampler2D spectrum;

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    vec3 col = vec3(0.0);
    for (int i = 0; i < 32; i++) {
        float k = float(i) / 32.0;
        float band = texture(spectrum, vec2(k, 0.5)).r;
        float radius = spread * (0.15 + 0.85 * fract(k * 7.31));
        float angle = 6.28318 * fract(k * 3.17) + iTime * swirl * (0.3 + k);
        vec2 c = radius * vec2(cos(angle), sin(angle));
        float r = size * (0.4 + 0.8 * band);
        float d = length(p - c);
        col += hsv(hue + 0.25 * k, 0.75, 1.0) * smoothstep(r, 0.0, d) * (0.6 + 0.8 * band);
    }
    col += vec3(1.0, 0.9, 0.8) * novelty * 0.25 * exp(-dot(p, p) * 2.0);
    fragColor = vec4(col, 1.0);
}
