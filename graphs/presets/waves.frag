// Lines of waves flowing across the frame: their height follows the code, their
// detail steps (held at most 4 times a second), they flow by 'flow' (the integral of
// the flowing speed), and each beat lifts them and brightens them.
uniform float lines;      // init: how many lines
uniform float height;     // wave height, in screen heights
uniform float detail;     // waves across the frame
uniform float flow;       // how far the waves have flowed
uniform float hue;
uniform float beat;       // 1 on a beat, fading
uniform float novelty;
uniform sampler2D spectrum;

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    vec3 col = vec3(0.0);
    for (int i = 0; i < 24; i++) {
        if (float(i) >= lines) break;
        float k = (float(i) + 0.5) / lines;
        float band = texture(spectrum, vec2(k, 0.5)).r;
        float y0 = k;
        float wave = sin(6.28318 * (uv.x * detail + flow * (0.5 + k)) + 7.0 * k)
                   * height * (0.4 + band) * (1.0 + 0.8 * beat) / lines * 3.0;
        float d = abs(uv.y - y0 - wave);
        float line = smoothstep(0.012 + 0.01 * beat, 0.0, d);
        col += hsv(hue + 0.3 * k, 0.65, 0.6 + 0.6 * band + 0.6 * beat) * line;
    }
    col += hsv(hue + 0.5, 0.4, 0.05 + 0.1 * beat + 0.15 * novelty);
    fragColor = vec4(col, 1.0);
}
