"""One versioned feature service per model. A model spec names its service; a new feature set is a new
version (`_v2`), never an edit of a service a registered model was trained on."""

from feast import FeatureService
from feature_views import customer_activity_fv, customer_profile_fv, offer_fv, session_stats_fv
from on_demand import engagement_ratios_odfv, offer_affinity_odfv

conversion_xgboost_v1 = FeatureService(
    name="conversion_xgboost_v1",
    features=[customer_profile_fv, customer_activity_fv, session_stats_fv, engagement_ratios_odfv],
    description="Conversion at session end: account, activity, session and engagement ratios.",
    tags={"model": "conversion-xgboost"},
)

conversion_mlp_v1 = FeatureService(
    name="conversion_mlp_v1",
    features=[customer_profile_fv, customer_activity_fv, session_stats_fv, engagement_ratios_odfv],
    description="Same inputs as the XGBoost model, for the PyTorch MLP.",
    tags={"model": "conversion-mlp"},
)

conversion_sklearn_v1 = FeatureService(
    name="conversion_sklearn_v1",
    features=[
        customer_profile_fv[["plan_tier", "company_size"]],
        customer_activity_fv,
        session_stats_fv,
        engagement_ratios_odfv,
    ],
    description="A smaller feature set for the scikit-learn baseline.",
    tags={"model": "conversion-sklearn"},
)

offer_ranker_xgboost_v1 = FeatureService(
    name="offer_ranker_xgboost_v1",
    # Who is asking (account, activity, this session) and what is offered (the offer, and the customer's
    # history with its category): the demo's relevance is an interest of the one in the other.
    features=[customer_profile_fv, customer_activity_fv, session_stats_fv, offer_fv, offer_affinity_odfv],
    description="Ranking offers in a session: customer, session, offer and customer x category features.",
    tags={"model": "offer-ranker-xgboost"},
)
