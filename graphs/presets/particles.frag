// Particles on orbits, seed 002's particle preset.  'spin' is the integral of the
// swirl speed over time (the preset file's "phase"), so a change of speed never makes
// the particles jump.  On each beat they flare and their orbits widen; they glow when
// the sound is novel.  Each particle is a sprite: its orbit, band and colour are worked
// out once per particle in sprite(), and only the pixels it covers draw it.
uniform float count;      // particles drawn (init; the preset's "sprites")
uniform float saturation; // init
uniform float spin;       // radians turned so far
uniform float size;       // particle radius, in screen heights
uniform float hue;        // 0..1, changed at most once every 10 s
uniform float spread;     // 0..1, how far from the centre the orbits reach
uniform float novelty;    // 0..1: sounds the autoencoder finds new
uniform float beat;       // 1 on a beat, fading
uniform sampler2D spectrum;

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

// Particle i: on its orbit, as big and as bright as its band of the spectrum.
void sprite(int i, out vec2 centre, out float radius, out vec4 colour) {
    float k = float(i) / count;
    float band = texture(spectrum, vec2(k, 0.5)).r;
    float orbit = spread * (0.15 + 0.85 * fract(k * 7.31)) * (1.0 + 0.25 * beat);
    float angle = 6.28318 * fract(k * 3.17) + spin * (0.3 + k);
    centre = orbit * vec2(cos(angle), sin(angle));
    radius = size * (0.4 + 0.8 * band) * (1.0 + 0.6 * beat);
    colour = vec4(hsv(hue + 0.25 * k, saturation, 1.0) * (0.6 + 0.8 * band + beat), 0.0);
}

// Behind the particles: a soft background and a glow when the sound is new.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    vec3 col = vec3(1.0, 0.9, 0.8) * novelty * 0.25 * exp(-dot(p, p) * 2.0);
    col += hsv(hue + 0.5, 0.5, 0.08 + 0.12 * beat) * (1.0 - 0.4 * length(p));
    fragColor = vec4(col, 1.0);
}
