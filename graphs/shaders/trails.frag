// Feedback trails: the previous frame, turned and shrunk a little, fades behind rings
// that bloom on every onset.
uniform sampler2D prev;  // this shader's previous frame
uniform float onset;     // 1 on an onset, fading
uniform float level;     // loudness 0..1
uniform float tint;      // 0..1, where on the colour wheel the rings are

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    float aspect = iResolution.x / iResolution.y;
    vec2 p = (uv - 0.5) * vec2(aspect, 1.0);
    float ang = 0.004 + 0.02 * level;
    mat2 turn = mat2(cos(ang), sin(ang), -sin(ang), cos(ang));
    vec2 q = turn * p * (0.99 - 0.02 * level);
    q = q / vec2(aspect, 1.0) + 0.5;
    vec3 trail = max(texture(prev, q).rgb * 0.95 - 1.0 / 255.0, 0.0);
    float r = length(p);
    float radius = 0.08 + 0.3 * (1.0 - onset);
    float ring = smoothstep(0.012, 0.0, abs(r - radius)) * onset;
    vec3 col = 0.5 + 0.5 * cos(6.28318 * (tint + vec3(0.0, 0.33, 0.67)));
    fragColor = vec4(max(trail, col * ring), 1.0);
}
