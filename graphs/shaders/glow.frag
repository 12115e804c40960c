// A soft radial glow that breathes with the bass and flares on beats and onsets, for
// blending over other images.
uniform float bass;    // 0..1
uniform float tint;    // 0..1
uniform float beat;    // 1 on a beat, fading
uniform float onset;   // 1 on an onset, fading

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    float r = length(p);
    vec3 col = 0.5 + 0.5 * cos(6.28318 * (tint + r * 0.3 + vec3(0.0, 0.33, 0.67)));
    float spread = 3.0 - 2.0 * bass - 0.8 * beat;
    fragColor = vec4(col * exp(-r * r * spread) * (0.25 + 0.55 * bass + 0.35 * beat + 0.35 * onset), 1.0);
}
