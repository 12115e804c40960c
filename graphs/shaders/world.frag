// Seed 000, a live music world: hills that rise with the bass and take their colours
// from the spectrum, a sky that flashes on beats, stars on onsets, and the audience's
// hands (skeleton points over OSC) bending the land toward them and glowing there.
uniform sampler2D spectrum;  // band energies 0..1
uniform float bass;          // 0..1
uniform float beat;          // 1 on a beat, fading
uniform float onset;         // 1 on an onset, fading
uniform vec2 left;           // a hand, in 0..1 image coordinates (x right, y down)
uniform vec2 right;          // the other hand

float hash(vec2 p) { return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453); }

vec2 bend(vec2 uv, vec2 hand) {
    if (hand == vec2(0.0)) return uv;         // no one there yet
    vec2 h = vec2(hand.x, 1.0 - hand.y);
    vec2 d = h - uv;
    return uv + d * 0.35 * exp(-dot(d, d) * 20.0);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    vec2 w = bend(bend(uv, left), right);
    vec3 sky = mix(vec3(0.02, 0.03, 0.10), vec3(0.25, 0.12, 0.40), w.y) + beat * vec3(0.20, 0.15, 0.30);
    vec2 cell = floor(w * vec2(80.0, 45.0));
    sky += onset * step(0.985, hash(cell)) * vec3(1.0);
    vec3 col = sky;
    for (int i = 0; i < 4; i++) {
        float k = float(i) / 4.0;
        float band = texture(spectrum, vec2(0.1 + 0.8 * k, 0.5)).r;
        float x = w.x * (3.0 + 2.0 * k) + iTime * (0.1 + 0.15 * k);
        float hill = 0.55 - 0.12 * k + (0.08 + 0.12 * bass) * sin(x) * cos(0.7 * x + k) + 0.05 * band;
        vec3 land = mix(vec3(0.1, 0.5, 0.4), vec3(0.9, 0.4, 0.2), band) * (0.35 + 0.2 * k);
        col = mix(col, land, smoothstep(hill + 0.004, hill - 0.004, w.y));
    }
    for (int j = 0; j < 2; j++) {
        vec2 hand = j == 0 ? left : right;
        vec2 h = vec2(hand.x, 1.0 - hand.y) * iResolution.xy / iResolution.y;
        float d = length(fragCoord / iResolution.y - h);
        col += vec3(1.0, 0.8, 0.5) * 0.6 * exp(-d * d * 400.0) * step(1e-4, hand.x + hand.y);
    }
    fragColor = vec4(col, 1.0);
}
