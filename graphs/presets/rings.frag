// Concentric rings, each a band of the spectrum: a ring swells with its band, the
// whole set is pushed outward on each beat and turns by 'turn' (the integral of the
// turning speed), broken into arcs so that the turning shows.
uniform float softness;   // init: how soft a ring's edge is, in thicknesses
uniform float rings;      // how many rings (whole numbers)
uniform float thickness;  // ring width, in screen heights
uniform float turn;       // radians turned so far
uniform float hue;
uniform float beat;       // 1 on a beat, fading
uniform float novelty;
uniform sampler2D spectrum;

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    float r = length(p) / (1.0 + 0.2 * beat);
    float a = atan(p.y, p.x);
    vec3 col = vec3(0.0);
    for (int i = 0; i < 16; i++) {
        if (float(i) >= rings) break;
        float k = (float(i) + 0.5) / rings;
        float band = texture(spectrum, vec2(k, 0.5)).r;
        float radius = 0.1 + 0.8 * k + 0.04 * band;
        float w = thickness * (0.6 + 1.4 * band);
        float ring = smoothstep(w * (1.0 + softness), w * (1.0 - softness), abs(r - radius));
        float arcs = 0.5 + 0.5 * sin(3.0 * a + turn * (1.0 + k) * (mod(float(i), 2.0) * 2.0 - 1.0));
        col += hsv(hue + 0.5 * k, 0.7, 0.5 + band + 0.8 * beat) * ring * (0.3 + 0.7 * arcs);
    }
    col += hsv(hue, 0.3, 1.0) * novelty * 0.2 * exp(-r * r * 4.0);
    fragColor = vec4(col, 1.0);
}
