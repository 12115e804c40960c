// An image recoloured by a hue: the chord's "feel" as colour (seed 004).  The image's
// brightness is kept; its colour turns toward the hue by 'amount'; every beat pushes
// the picture in and lights it, and a soft flash follows onsets.
uniform sampler2D image;
uniform float hue;      // 0..1 round the colour wheel (from audio.chroma's strongest class)
uniform float amount;   // 0..1, how far the colour turns
uniform float onset;    // 1 on an onset, fading
uniform float beat;     // 1 on a beat, fading

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = (fragCoord / iResolution.xy - 0.5) / (1.0 + 0.1 * beat) + 0.5;
    vec3 c = texture(image, uv).rgb;
    float luma = dot(c, vec3(0.299, 0.587, 0.114));
    vec3 toned = hsv(hue, 0.8, 1.0) * luma * 1.6;
    vec3 col = (mix(c, toned, amount) + onset * 0.1) * (0.85 + 0.5 * beat);
    fragColor = vec4(col, 1.0);
}
