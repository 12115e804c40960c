// Spectrum bars: one bar per band, hue across the spectrum, a glow on every beat.
uniform sampler2D spectrum;   // band energies, about 0..1 (audio.spectrum bands with agc)
uniform float level;          // loudness 0..1 (mapped audio.level)
uniform float beat;           // 1 on a beat, fading

vec3 hue(float h) {
    return clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    float bars = 32.0;
    float i = floor(uv.x * bars);
    float x = fract(uv.x * bars);
    float v = texture(spectrum, vec2((i + 0.5) / bars, 0.5)).r;
    float h = 0.05 + 0.9 * v * (0.5 + 0.5 * level);
    float body = step(uv.y, h) * smoothstep(0.0, 0.1, x) * smoothstep(1.0, 0.9, x);
    vec3 col = hue(i / bars * 0.8 + iTime * 0.03) * body * (0.5 + 0.5 * uv.y / max(h, 0.01));
    col += hue(i / bars * 0.8) * smoothstep(0.015, 0.0, abs(uv.y - h)) * 0.8;
    col += vec3(0.25, 0.12, 0.45) * beat * (1.0 - uv.y);
    fragColor = vec4(col, 1.0);
}
