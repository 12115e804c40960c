// A soft radial glow that breathes with the bass, for blending over other images.
uniform float bass;    // 0..1
uniform float tint;    // 0..1

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    float r = length(p);
    vec3 col = 0.5 + 0.5 * cos(6.28318 * (tint + r * 0.3 + vec3(0.0, 0.33, 0.67)));
    fragColor = vec4(col * exp(-r * r * (3.0 - 2.0 * bass)) * (0.3 + 0.7 * bass), 1.0);
}
